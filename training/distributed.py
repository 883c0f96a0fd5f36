"""Multi-process training with PyTorch's own engine: ``torchrun`` + DistributedDataParallel.

    torchrun --nproc_per_node=2 -m training.train --model cnn --data DATA --out RUN

``torchrun`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` in each process; :func:`setup`
reads them and joins the process group (NCCL on GPUs, gloo on the CPU). Without them the run is
one plain process and nothing here does anything. Each process trains on its own shard of the
training set (a :class:`DistributedSampler`) at ``--batch-size`` images per step, so the global
batch is ``WORLD_SIZE x --batch-size``; validation is sharded too and gathered, so every process
sees the same accuracy and takes the same early-stopping decision. Only rank 0 writes files,
logs and progress bars.
"""

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, Subset


@dataclass(frozen=True)
class Dist:
    """This process's place in the run: ``rank`` of ``world`` processes."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, metrics and logs."""
        return self.rank == 0


SINGLE = Dist()  # a plain one-process run (frozen, so safe as a default argument)


def from_env() -> Dist:
    """The ranks ``torchrun`` set, or a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    return Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def setup(dist_info: Dist, device: torch.device) -> torch.device:
    """Join the process group; return this process's device (``cuda:LOCAL_RANK`` on GPUs)."""
    if not dist_info.enabled:
        return device
    if device.type == "cuda":
        torch.cuda.set_device(dist_info.local_rank)
        device = torch.device("cuda", dist_info.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                rank=dist_info.rank, world_size=dist_info.world)
    return device


def teardown(dist_info: Dist) -> None:
    if dist_info.enabled and dist.is_initialized():
        dist.barrier()  # rank 0 may still be writing the test metrics
        dist.destroy_process_group()


def barrier(dist_info: Dist) -> None:
    if dist_info.enabled:
        dist.barrier()


def wrap(model: nn.Module, dist_info: Dist, device: torch.device) -> nn.Module:
    """The module to train: DDP (which averages gradients across processes) or ``model`` itself."""
    if not dist_info.enabled:
        return model
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                   else None)


def shard(dataset: Dataset, dist_info: Dist) -> Dataset:
    """Every ``world``-th sample from ``rank``: disjoint, together the whole set, no padding."""
    if not dist_info.enabled:
        return dataset
    return Subset(dataset, range(dist_info.rank, len(dataset), dist_info.world))


def sum_all(values: list[float], dist_info: Dist, device: torch.device) -> list[float]:
    """Element-wise sums over the processes (the values themselves in a single process)."""
    if not dist_info.enabled:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def gather_lists(items: list, dist_info: Dist) -> list:
    """Every process's ``items`` concatenated in rank order (only ``items`` in one process)."""
    if not dist_info.enabled:
        return items
    gathered: list = [None] * dist_info.world
    dist.all_gather_object(gathered, items)
    return [x for part in gathered for x in part]
