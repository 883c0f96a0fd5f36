"""The training loop's parts shared by ``training.train`` and ``training.evaluate``: the device,
seeding, data loaders, one training epoch and one evaluation pass (each also under torchrun:
see :mod:`training.distributed`).
"""

import os
import random
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from common.cli import UserError
from common.runs import RunConfig
from training import distributed, progress
from training.distributed import SINGLE, Dist
from training.pretrained import keep_batchnorm_eval, keep_frozen_batchnorm_eval

DEFAULT_WORKERS = min(4, os.cpu_count() or 1)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU.

    Raises:
        UserError: for ``cuda`` on a machine without a usable GPU.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA GPU is available; "
                       "use --device cpu or auto")
    return torch.device(name)


def epoch_seed(seed: int, epoch: int) -> int:
    """A 32-bit seed from (seed, epoch); SeedSequence mixes them the same way on every machine."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_loader(dataset: Dataset, batch_size: int, workers: int, device: torch.device,
                generator: torch.Generator | None = None,
                sampler: Sampler | None = None) -> DataLoader:
    """A DataLoader; shuffled by ``generator`` or ordered by ``sampler`` when one is given."""
    shuffle = generator is not None
    n = len(sampler) if sampler is not None else len(dataset)
    # A last batch of one sample breaks batch norm in train mode ("more than 1 value per channel").
    drop_last = (shuffle or sampler is not None) and n % batch_size == 1 and n > 1
    # Text and multimodal datasets batch variable-length feature ids with their own collate.
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                      sampler=sampler, num_workers=workers, pin_memory=device.type == "cuda",
                      drop_last=drop_last, collate_fn=getattr(dataset, "collate", None))


def epoch_loader(dataset: Dataset, cfg: RunConfig, device: torch.device, epoch: int,
                 dist_info: Dist = SINGLE) -> DataLoader:
    """The training loader of ``epoch``, seeded so epoch k is the same with or without a resume.

    Under torchrun a DistributedSampler gives each process its shard of one seeded permutation.
    """
    seed = epoch_seed(cfg.seed, epoch)
    seed_everything((seed + dist_info.rank) % 2**32)  # each process augments differently
    if not dist_info.enabled:
        return make_loader(dataset, cfg.batch_size, cfg.workers, device,
                           generator=torch.Generator().manual_seed(seed))
    sampler = DistributedSampler(dataset, dist_info.world, dist_info.rank, seed=cfg.seed)
    sampler.set_epoch(epoch)
    return make_loader(dataset, cfg.batch_size, cfg.workers, device, sampler=sampler)


def train_one_epoch(model: nn.Module, criterion: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, loader: DataLoader,
                    device: torch.device, desc: str, dist_info: Dist = SINGLE,
                    frozen_bn: bool = False, mixup: float = 0.0) -> dict:
    """One pass over ``loader``, stepping the schedule every batch; returns mean loss, accuracy,
    image count (all processes together) and seconds. ``frozen_bn``: every batch norm keeps its
    running statistics (eval mode), not only those of frozen layers. ``mixup``: the Beta(a, a)
    parameter of mixup (0: off); accuracy then counts the larger share's label."""
    model.train()
    if frozen_bn:
        keep_batchnorm_eval(model)
    keep_frozen_batchnorm_eval(model)
    total_loss, correct, seen = 0.0, 0, 0
    started = time.perf_counter()
    bar = progress.BatchProgress(len(loader), desc, dist_info.is_main)
    for images, labels in loader:
        images = images.to(device, non_blocking=True)  # (B, 3, S, S), or a text/listing batch
        labels = labels.to(device, non_blocking=True)  # (B,)
        other, lam = labels, 1.0
        if mixup > 0:
            images, other, lam = mix_up(images, labels, mixup)
        logits = model(images)  # (B, num_classes)
        loss = criterion(logits, labels)
        if lam < 1:  # mixup: the blend of both labels' losses
            loss = lam * loss + (1 - lam) * criterion(logits, other)
            labels = labels if lam >= 0.5 else other  # accuracy counts the larger share's label
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total_loss += loss.item() * labels.size(0)
        correct += (logits.argmax(dim=1) == labels).sum().item()
        seen += labels.size(0)
        bar.update(total_loss / seen, seen)
    bar.close()
    seconds = time.perf_counter() - started
    total_loss, correct, seen = distributed.sum_all([total_loss, correct, seen], dist_info, device)
    return {"loss": total_loss / max(seen, 1), "accuracy": correct / max(seen, 1),
            "images": int(seen), "seconds": seconds}


def mix_up(images: torch.Tensor, labels: torch.Tensor, alpha: float) -> tuple:
    """Mixup (Zhang et al., ICLR 2018): each picture blended with another of the batch.

    ``lam ~ Beta(alpha, alpha)`` from torch's seeded generator (see :func:`epoch_loader`); the
    batch becomes ``lam * x + (1 - lam) * x[perm]`` and its loss the same blend of the two labels'.

    Returns:
        ``(mixed images (B, 3, S, S), the other picture's labels (B,), lam)``.
    """
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(images.size(0), device=images.device)
    return lam * images + (1 - lam) * images[perm], labels[perm], lam


@torch.inference_mode()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device,
             dist_info: Dist = SINGLE) -> dict:
    """Mean loss, accuracy, true and predicted labels of ``model`` over ``loader``; under
    torchrun over every process's shard together."""
    model.eval()
    total_loss, y_true, y_pred = 0.0, [], []
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)  # (B, 3, S, S) or a batch, (B,)
        logits = model(images)  # (B, num_classes)
        total_loss += F.cross_entropy(logits, labels, reduction="sum").item()
        y_true += labels.tolist()
        y_pred += logits.argmax(dim=1).tolist()
    [total_loss] = distributed.sum_all([total_loss], dist_info, device)
    y_true = distributed.gather_lists(y_true, dist_info)
    y_pred = distributed.gather_lists(y_pred, dist_info)
    n = len(y_true)
    accuracy = sum(t == p for t, p in zip(y_true, y_pred, strict=True)) / n if n else 0.0
    return {"loss": total_loss / n if n else 0.0, "accuracy": accuracy,
            "y_true": y_true, "y_pred": y_pred}


def cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU snapshot of ``model``'s weights: copied even on the CPU, where ``.cpu()`` would hand
    back the live tensors that the next optimiser step changes in place."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
