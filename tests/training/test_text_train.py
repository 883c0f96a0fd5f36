"""training.train --model text | multimodal: run directory, metrics, resume, text-only data."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from aicore.categories import ROOT_CATEGORIES
from aicore.models import embed, load_trained
from aicore.text import collate_ids
from tests.support.data import make_clean_dataset
from training import evaluate, prepare
from training import train as train_module
from training.checkpoint import load_checkpoint
from training.listing_data import ListingTextDataset
from common.cli import UserError
from common.dataset_format import read_clean_dir
from datagen.demo_text import listing_text
from training.export import PRODUCT_COLUMNS

SMALL = ["--buckets", "4096", "--workers", "0", "--batch-size", "8"]


def train(*argv: str) -> dict:
    return train_module.main(train_module.get_args_parser().parse_args(list(argv)))


@pytest.fixture(scope="module")
def data3(tmp_path_factory) -> Path:
    return make_clean_dataset(tmp_path_factory.mktemp("data") / "clean", num_classes=3,
                              products_per_class=8, images_per_product=1, size=32)


@pytest.fixture(scope="module")
def text_run(data3, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("runs") / "text"
    return out, train("--model", "text", "--data", str(data3), "--out", str(out), "--epochs", "3",
                      *SMALL)


def test_text_run_learns_and_reports_the_tfidf_reference(text_run):
    out, metrics = text_run
    for name in ("model.pt", "model_args.json", "index_to_name.json", "checkpoint.pt",
                 "metrics.json", "config.json", "split.json"):
        assert (out / name).is_file(), name
    assert list(out.glob("events.out.tfevents.*"))
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["tfidf_logreg"]["test_accuracy"] == metrics["tfidf_logreg"]["test_accuracy"]
    assert 0.0 <= saved["tfidf_logreg"]["test_accuracy"] <= 1.0
    # the fixture's text names the category: the model must find it (chance is 1/3)
    assert metrics["test_accuracy"] >= 0.9
    assert json.loads((out / "config.json").read_text())["lr"] == 0.2  # the text default


def test_text_run_loads_and_embeds_like_serving(text_run):
    out, _ = text_run
    model, names, args = load_trained(out)
    assert args["arch"] == "text" and args["text"]["buckets"] == 4096
    batch = collate_ids([model.featurizer.encode("appliances item", ""), []])
    vectors = embed(model, batch)  # (2, 64); an empty listing embeds to zeros, not NaN
    assert vectors.shape == (2, 64)
    assert vectors[0].norm().item() == pytest.approx(1.0, abs=1e-5)
    assert not torch.isnan(vectors).any()


def test_text_run_weights_features_by_the_training_splits_idf(text_run, data3):
    out, _ = text_run
    model, _, args = load_trained(out)
    assert args["idf"] is True
    split = json.loads((out / "split.json").read_text())
    dataset = ListingTextDataset(read_clean_dir(data3), split["train"], model.featurizer)
    frequency = torch.zeros(model.featurizer.buckets)
    for ids in dataset.features:
        frequency[sorted(set(ids))] += 1
    expected = torch.log((1.0 + len(dataset.features)) / (1.0 + frequency)) + 1.0
    torch.testing.assert_close(model.encoder.idf, expected)  # saved in model.pt, loaded back
    assert model.encoder.idf.max() > model.encoder.idf.min()  # not the all-ones start


def test_evaluate_recomputes_the_text_runs_test_accuracy(text_run, data3):
    out, metrics = text_run
    result = evaluate.main(evaluate.get_args_parser().parse_args(
        ["--run", str(out), "--data", str(data3), "--workers", "0"]))
    assert result["accuracy"] == pytest.approx(metrics["test_accuracy"])


def test_text_resume_equals_continuous_training(data3, tmp_path):
    common = ["--model", "text", "--data", str(data3), "--step-size", "1", "--seed", "3", *SMALL]
    train(*common, "--out", str(tmp_path / "straight"), "--epochs", "2")
    train(*common, "--out", str(tmp_path / "resumed"), "--epochs", "1")
    train(*common, "--resume", str(tmp_path / "resumed" / "checkpoint.pt"), "--epochs", "2")
    straight = load_checkpoint(tmp_path / "straight" / "checkpoint.pt")
    resumed = load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")
    assert resumed["epoch"] == 2
    for key, value in straight["model"].items():
        torch.testing.assert_close(resumed["model"][key], value, rtol=1e-5, atol=1e-6)
    # the optimiser (SparseAdagrad) resumed with its accumulated squared gradients, not zeros
    for index, state in straight["optimizer"]["state"].items():
        assert resumed["optimizer"]["state"][index]["step"] == state["step"] > 0
        torch.testing.assert_close(resumed["optimizer"]["state"][index]["sum"], state["sum"],
                                   rtol=1e-5, atol=1e-6)


def test_multimodal_starts_from_an_image_run_and_trains(data3, tmp_path):
    cnn = tmp_path / "cnn"
    train("--model", "cnn", "--data", str(data3), "--out", str(cnn), "--epochs", "1",
          "--workers", "0", "--batch-size", "8")
    out = tmp_path / "mm"
    metrics = train("--model", "multimodal", "--data", str(data3), "--out", str(out), "--epochs",
                    "1", "--image-init", str(cnn), *SMALL)
    assert "tfidf_logreg" not in metrics
    model, _, args = load_trained(out)
    assert args["image_arch"] == "cnn"
    assert args["idf"] is True and model.text.idf.max() > model.text.idf.min()  # fitted, saved
    start = load_checkpoint(out / "checkpoint.pt")["model"]
    cnn_weights = torch.load(cnn / "model.pt", weights_only=True)
    # the image head is unused by the multimodal model, so it keeps the image run's weights
    torch.testing.assert_close(start["image.classifier.4.weight"], cnn_weights["classifier.4.weight"])


def test_multimodal_image_init_of_another_arch_is_refused(text_run, data3, tmp_path):
    out, _ = text_run
    with pytest.raises(UserError, match="does not fit a cnn image encoder"):
        train("--model", "multimodal", "--data", str(data3), "--out", str(tmp_path / "mm"),
              "--image-init", str(out), *SMALL)
    assert not (tmp_path / "mm").exists()


@pytest.mark.parametrize("argv", [
    ["--model", "cnn", "--image-init", "x"],
    ["--model", "text", "--momentum", "0.9"],
    ["--model", "resnet50", "--buckets", "10"],
])
def test_options_of_other_models_are_refused(data3, tmp_path, argv):
    with pytest.raises(UserError):
        train(*argv, "--data", str(data3), "--out", str(tmp_path / "run"))


def test_text_only_dataset_from_products_alone(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for c, category in enumerate(ROOT_CATEGORIES[:3]):
        for p in range(5):
            title, description = listing_text(rng, category, "Barely used", "Leeds, Leeds", "£5",
                                              "\r")
            rows.append([f"p{c}{p}", title, f"{category} / Sub", description, "£5", "Leeds"])
    rows.append(["bad", "Free sofa", "Home & Garden / Sofas", "", "free", "Leeds"])
    products = tmp_path / "Products.csv"
    pd.DataFrame(rows, columns=list(PRODUCT_COLUMNS)).to_csv(products, lineterminator="\n")
    clean = tmp_path / "clean"
    report = prepare.main(prepare.get_args_parser().parse_args(
        ["--products", str(products), "--out", str(clean)]))
    assert report["source"] == "products"
    assert report["products"]["kept"] == 15
    assert report["products"]["dropped"] == {"unparseable price": 1}
    metrics = train("--model", "text", "--data", str(clean), "--out", str(tmp_path / "t"),
                    "--epochs", "1", *SMALL)
    assert metrics["counts"]["test"]["total"] == 3
    with pytest.raises(UserError, match="text-only dataset"):
        train("--model", "cnn", "--data", str(clean), "--out", str(tmp_path / "c"),
              "--workers", "0")


def test_multimodal_text_init_starts_from_the_text_run(text_run, data3, tmp_path):
    text_out, _ = text_run
    cnn = tmp_path / "cnn"
    train("--model", "cnn", "--data", str(data3), "--out", str(cnn), "--epochs", "1",
          "--workers", "0", "--batch-size", "8")
    out = tmp_path / "mm"
    train("--model", "multimodal", "--data", str(data3), "--out", str(out), "--epochs", "1",
          "--image-init", str(cnn), "--text-init", str(text_out), *SMALL)
    text_model, _, _ = load_trained(text_out)
    model, _, _ = load_trained(out)
    # idf is not trained: the text run's, not one fitted again on this run's split
    torch.testing.assert_close(model.text.idf, text_model.encoder.idf)
    # the table started as the text run's: the rows no training listing touched are still it
    same_rows = (model.text.bag.weight == text_model.encoder.bag.weight).all(dim=1)
    assert same_rows.float().mean() > 0.9


def test_multimodal_text_init_refuses_a_run_it_cannot_use(text_run, data3, tmp_path):
    text_out, _ = text_run
    with pytest.raises(UserError, match="same --buckets"):
        train("--model", "multimodal", "--data", str(data3), "--out", str(tmp_path / "a"),
              "--text-init", str(text_out), "--buckets", "2048", "--workers", "0")
    with pytest.raises(UserError, match="not a finished text run"):
        train("--model", "multimodal", "--data", str(data3), "--out", str(tmp_path / "b"),
              "--text-init", str(tmp_path), *SMALL)
    with pytest.raises(UserError, match="multimodal only"):
        train("--model", "text", "--data", str(data3), "--out", str(tmp_path / "c"),
              "--text-init", str(text_out), *SMALL)
