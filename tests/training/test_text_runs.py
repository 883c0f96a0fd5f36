"""What text and multimodal runs add to training: option checks, model options, idf, text-init."""

import argparse
import json
import math

import pytest
import torch

from aicore.models import MODEL_ARGS_FILE, MODEL_FILE
from aicore.text import DEFAULT_BUCKETS
from aicore.text_models import MultimodalClassifier, TextClassifier
from common.cli import UserError
from training import text_runs
from training.sparse_adagrad import SparseAdagrad

TEXT = {"buckets": 16, "char_ngrams": [3, 5], "word_ngrams": 2, "max_tokens": 64}


def _args(**changes) -> argparse.Namespace:
    values = {"model": "text", "image_init": None, "image_arch": "cnn", "momentum": 0.0,
              "weight_decay": 0.0, "buckets": DEFAULT_BUCKETS, "text_init": None, **changes}
    return argparse.Namespace(**values)


@pytest.mark.parametrize("changes, message", [
    ({"model": "cnn", "image_arch": "resnet50"},
     "--image-arch and --image-init apply to --model multimodal only, not cnn"),
    ({"momentum": 0.9}, "--momentum and --weight-decay apply to SGD; --model text trains with Adagrad"),
    ({"model": "cnn", "buckets": 1024}, "--buckets applies to --model text or multimodal only, not cnn"),
    ({"text_init": "runs/text"}, "--text-init applies to --model multimodal only, not text"),
])
def test_check_text_args_refuses_options_of_another_model(changes, message):
    with pytest.raises(UserError, match=message):
        text_runs.check_text_args(_args(**changes))


def test_check_text_args_refuses_an_image_init_that_is_not_a_run(tmp_path):
    with pytest.raises(UserError, match=f"--image-init {tmp_path} is not a finished image run "
                                        f"\\({MODEL_FILE} is missing\\): train one with --model cnn"):
        text_runs.check_text_args(_args(model="multimodal", image_init=str(tmp_path)))


def test_check_text_args_accepts_matching_options(tmp_path):
    (tmp_path / MODEL_FILE).write_bytes(b"")
    text_runs.check_text_args(_args(model="multimodal", image_init=str(tmp_path), buckets=1024))
    text_runs.check_text_args(_args(model="cnn", momentum=0.9, weight_decay=1e-4))


def test_text_model_options_by_arch():
    assert text_runs.text_model_options({"model": "cnn", "buckets": 8}) == {}
    text = text_runs.text_model_options({"model": "text", "buckets": 8})
    multimodal = text_runs.text_model_options({"model": "multimodal", "buckets": 8, "image_arch": "resnet50"})

    assert text["idf"] is True and text["text"]["buckets"] == 8 and text["text"]["word_ngrams"] == 2
    assert multimodal == {"text": text["text"], "image_arch": "resnet50", "idf": True}


def test_text_recipe_is_adagrad_at_the_arch_lr():
    recipe = text_runs.text_recipe("multimodal")

    assert (recipe["optimizer"], recipe["lr"], recipe["weight_decay"]) == ("adagrad", 0.01, 0.0)
    assert text_runs.text_recipe("text")["lr"] == text_runs.DEFAULT_LR["text"] == 0.2


def test_text_optimizer_of_a_text_model_is_sparse_adagrad_at_lr():
    model = TextClassifier(3, TEXT, dim=4)

    optimizer = text_runs.text_optimizer(model, {"model": "text", "lr": 0.3})

    assert isinstance(optimizer, SparseAdagrad)
    assert [g["lr"] for g in optimizer.param_groups] == [0.3]


def test_fit_idf_counts_each_feature_once_per_sample():
    model = TextClassifier(2, TEXT, dim=4, idf=True)

    text_runs.fit_idf(model, [[1, 1, 2], [2, 3], [2]])

    idf = model.encoder.idf
    # n = 3 samples; df: id 1 -> 1, id 2 -> 3, id 3 -> 1, others 0; idf = ln((1+n)/(1+df)) + 1
    assert idf[1].item() == pytest.approx(math.log(4 / 2) + 1)
    assert idf[2].item() == pytest.approx(1.0)
    assert idf[0].item() == pytest.approx(math.log(4) + 1)
    assert idf.shape == (16,)


def _text_run(run_dir, arch="text", idf=True, text=TEXT):
    run_dir.mkdir()
    model = TextClassifier(2, text, dim=4, idf=idf)
    torch.save(model.state_dict(), run_dir / MODEL_FILE)
    (run_dir / MODEL_ARGS_FILE).write_text(json.dumps({"arch": arch, "idf": idf, "text": text}))
    return run_dir


@pytest.mark.parametrize("run, message", [
    (lambda p: p, "is not a finished text run"),
    (lambda p: _text_run(p / "r", arch="multimodal"),
     "holds a 'multimodal' model: train one with --model text"),
    (lambda p: _text_run(p / "r", idf=False), "holds a 'text' model without idf weights"),
    (lambda p: _text_run(p / "r", text={**TEXT, "buckets": 32}), "use the same --buckets"),
])
def test_init_text_encoder_refuses_a_run_that_does_not_fit(tmp_path, run, message):
    target = TextClassifier(2, TEXT, dim=4, idf=True)  # only its featurizer is read before refusing

    with pytest.raises(UserError, match=message):
        text_runs.init_text_encoder(target, run(tmp_path))


class _TinyImage(torch.nn.Module):
    """A stand-in image encoder: what MultimodalClassifier needs of one (embedding_dim, weights)."""

    embedding_dim = 3

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Linear(2, 3)


def _multimodal() -> MultimodalClassifier:
    return MultimodalClassifier(2, "cnn", _TinyImage(), TEXT, text_dim=4, fusion_dim=5, idf=True)


def test_init_text_encoder_copies_the_table_and_idf(tmp_path):
    run = _text_run(tmp_path / "r")
    saved = torch.load(run / MODEL_FILE, weights_only=True)
    model = _multimodal()

    text_runs.init_text_encoder(model, run)

    assert torch.equal(model.text.bag.weight, saved["encoder.bag.weight"])
    assert torch.equal(model.text.idf, saved["encoder.idf"])


def test_init_image_encoder_loads_a_fitting_run_and_names_a_misfit(tmp_path):
    source = _TinyImage()
    torch.save(source.state_dict(), tmp_path / MODEL_FILE)
    model = _multimodal()

    text_runs.init_image_encoder(model, tmp_path, "cnn")

    assert torch.equal(model.image.conv.weight, source.conv.weight)
    torch.save({"conv.weight": torch.zeros(7, 2), "conv.bias": torch.zeros(7)}, tmp_path / MODEL_FILE)
    with pytest.raises(UserError, match=f"--image-init {tmp_path}: its {MODEL_FILE} does not fit a cnn"):
        text_runs.init_image_encoder(model, tmp_path, "cnn")


def test_text_optimizer_of_a_multimodal_model_gives_the_table_its_own_lr():
    model = _multimodal()

    optimizer = text_runs.text_optimizer(model, {"model": "multimodal", "lr": 0.01})

    table, rest = optimizer.param_groups
    assert table["params"] == [model.text.bag.weight] and table["lr"] == text_runs.TABLE_LR
    assert rest["lr"] == 0.01 and not any(p is model.text.bag.weight for p in rest["params"])
    assert len(rest["params"]) == len(list(model.parameters())) - 1
