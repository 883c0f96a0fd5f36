"""training.finetune_sweep: the trainer's fine-tune on cached frozen-stage activations."""

from pathlib import Path

import pytest
import torch

from aicore.efficientnet import EfficientNetLite0
from training.finetune_sweep import Frozen, Trained, get_args_parser, main, parse_setting
from common.cli import UserError
from tests.support.data import make_clean_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 hues x 8 products x 2 images at 32 px: separable by colour alone."""
    return make_clean_dataset(tmp_path_factory.mktemp("sweep"), num_classes=3, products_per_class=8,
                              images_per_product=2, size=32)


def sweep(*argv: str) -> list[dict]:
    return main(get_args_parser().parse_args(list(argv)))


@pytest.mark.parametrize("blocks", [0, 3, 7])
def test_frozen_then_trained_is_the_models_forward(blocks: int) -> None:
    """The split point changes nothing: cached activations through the rest give the logits."""
    torch.manual_seed(0)
    model = EfficientNetLite0(4).eval()
    torch.nn.init.normal_(model.net.classifier.weight)  # a zero head would hide a wrong path
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        split = Trained(model, blocks)(Frozen(model, blocks)(x))
        torch.testing.assert_close(split, model(x))


def test_lr_zero_keeps_the_probe_and_its_accuracy(data: Path, tmp_path: Path) -> None:
    """With no step size the fine-tune is the probe: every epoch's validation accuracy is the
    probe's (the head fold and the evaluation path agree), and the gain is exactly 0."""
    [result] = sweep("--data", str(data), "--seeds", "0", "--freeze-blocks", "6",
                     "--setting", "lr=0,epochs=2", "--test", "--out", str(tmp_path / "r.json"))
    [seed0] = result["runs"]
    assert seed0["probe_val"] > 0.5  # colours: chance is 1/3
    assert seed0["val"] == [seed0["probe_val"]] * 2 and seed0["gain"] == 0
    assert seed0["last_test"] == seed0["probe_test"] and result["test_gain"]["mean"] == 0
    assert (tmp_path / "r.json").is_file()


def test_a_sweep_is_reproducible_and_reads_its_cache(data: Path, tmp_path: Path) -> None:
    cache = tmp_path / "acts.pt"
    first = sweep("--data", str(data), "--seeds", "0", "1", "--freeze-blocks", "5",
                  "--setting", "lr=1e-2,epochs=2,warmup_epochs=0", "--cache", str(cache))
    saved = torch.load(cache, weights_only=True)
    assert saved["acts"].shape[:2] == (48, 2) and saved["blocks"] == 5
    stamp = cache.stat().st_mtime_ns
    again = sweep("--data", str(data), "--seeds", "0", "1", "--freeze-blocks", "5",
                  "--setting", "lr=1e-2,epochs=2,warmup_epochs=0", "--cache", str(cache))
    assert cache.stat().st_mtime_ns == stamp  # read, not recomputed
    assert again[0]["runs"] == [{**r, "seconds": a["seconds"]}
                                for r, a in zip(first[0]["runs"], again[0]["runs"], strict=True)]
    assert [len(r["val"]) for r in first[0]["runs"]] == [2, 2]
    assert first[0]["val_gain"]["min"] <= first[0]["val_gain"]["mean"]
    other = sweep("--data", str(data), "--seeds", "0", "--freeze-blocks", "6",
                  "--setting", "epochs=1", "--cache", str(cache))
    assert torch.load(cache, weights_only=True)["blocks"] == 6 and other[0]["freeze_blocks"] == 6


def test_settings_are_typed_like_the_recipe() -> None:
    assert parse_setting("lr=1e-3, epochs=10,mixup=0.4") == {"lr": 1e-3, "epochs": 10, "mixup": 0.4}
    assert parse_setting("") == {}


@pytest.mark.parametrize(("text", "named"), [("crop=1", "'crop=1'"), ("lr", "'lr'"),
                                             ("epochs=ten", "epochs='ten' is not a valid int")])
def test_a_bad_setting_is_named(text: str, named: str) -> None:
    with pytest.raises(UserError, match=named):
        parse_setting(text)


def test_freeze_blocks_out_of_range_is_refused(data: Path) -> None:
    with pytest.raises(UserError, match="--freeze-blocks must be 0..7"):
        sweep("--data", str(data), "--freeze-blocks", "8")


def test_only_the_stages_after_the_frozen_ones_train(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The optimiser gets stages K.. , conv_head, bn2 and the head: nothing of the cached stages."""
    import training.finetune_sweep as sweep_module
    seen = []
    real = sweep_module.make_optimizer

    def recording(model: torch.nn.Module, config: dict) -> torch.optim.Optimizer:
        seen.extend(n for n, p in model.named_parameters() if p.requires_grad)
        return real(model, config)

    monkeypatch.setattr(sweep_module, "make_optimizer", recording)
    sweep("--data", str(data), "--seeds", "0", "--freeze-blocks", "5", "--setting", "epochs=1")
    trained = ("model.net.blocks.5.", "model.net.blocks.6.", "model.net.conv_head.",
               "model.net.bn2.", "model.net.classifier.")
    assert {next(p for p in trained if n.startswith(p)) for n in seen if n.startswith(trained)} \
        == set(trained)
    assert [n for n in seen if not n.startswith(trained)] == []
