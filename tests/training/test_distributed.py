"""``torchrun --nproc_per_node=2 -m training.train``: DDP over gloo on this CPU, start and resume."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.support.data import make_clean_dataset
from training.checkpoint import load_checkpoint
from training.distributed import SINGLE, Dist, from_env, shard

TORCHRUN_TIMEOUT_S = 300  # two processes, two epochs of 24 images; ~30 s when the CPU is free


def torchrun(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", "-m", "training.train", *argv],
                          capture_output=True, text=True, env=env, timeout=TORCHRUN_TIMEOUT_S)


def test_from_env_without_torchrun_is_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert from_env() == SINGLE and not SINGLE.enabled and SINGLE.is_main


def test_from_env_reads_torchruns_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert from_env() == Dist(rank=3, world=4, local_rank=1) and not from_env().is_main


def test_shards_are_disjoint_and_cover_the_set() -> None:
    data = list(range(11))
    parts = [list(shard(data, Dist(rank, 3))) for rank in range(3)]
    assert sorted(x for part in parts for x in part) == data
    assert [len(p) for p in parts] == [4, 4, 3]


def test_torchrun_two_processes_train_and_resume(tmp_path: Path) -> None:
    data = make_clean_dataset(tmp_path / "data", num_classes=3, products_per_class=6,
                              images_per_product=2, size=40)
    out = tmp_path / "run"
    common = ["--model", "cnn", "--data", str(data), "--batch-size", "4", "--workers", "0"]
    first = torchrun(*common, "--out", str(out), "--epochs", "2")
    assert first.returncode == 0, first.stderr[-3000:]
    # Rank 0 alone logs, and writes TensorBoard events (from one process), the checkpoint and the metrics.
    assert first.stdout.count("epoch 1/2:") == 1 and first.stdout.count("test accuracy") == 1
    writer_pids = {p.name.split(".")[-2] for p in out.glob("events.out.tfevents.*")}
    assert len(writer_pids) == 1  # events.out.tfevents.<time>.<host>.<pid>.<n>
    ckpt = load_checkpoint(out / "checkpoint.pt")
    # 24 training images over 2 processes at batch 4: 3 steps per process per epoch.
    assert ckpt["epoch"] == 2 and ckpt["scheduler"]["last_epoch"] == 6
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["counts"]["test"]["total"] == sum(map(sum, metrics["confusion_matrix"]))

    resumed = torchrun(*common, "--resume", str(out / "checkpoint.pt"), "--epochs", "3")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "epoch 3/3:" in resumed.stdout and "epoch 1/" not in resumed.stdout
    after = load_checkpoint(out / "checkpoint.pt")
    assert after["epoch"] == 3 and len(after["history"]) == 3
    assert after["scheduler"]["last_epoch"] == 9
    assert not torch.equal(after["model"]["classifier.4.weight"], ckpt["model"]["classifier.4.weight"])
