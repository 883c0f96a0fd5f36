"""A run's split images: paths and label indices from the manifest, and errors that name the fix."""

import json

import pytest

from handler.split_images import SplitError, read_split_images, run_data_dir

LABELS = ["Appliances", "Home"]  # index_to_name.json: 0 -> Appliances, 1 -> Home


@pytest.fixture
def run_and_data(tmp_path):
    run, data = tmp_path / "run", tmp_path / "data"
    run.mkdir()
    data.mkdir()
    (run / "index_to_name.json").write_text(json.dumps({"0": LABELS[0], "1": LABELS[1]}))
    (run / "split.json").write_text(json.dumps({"seed": 0, "train": ["i0", "i1", "i2", "i3"],
                                                "val": [], "test": ["i3", "i1"]}))
    rows = [("i0", "p0", "Home"), ("i1", "p1", "Appliances"), ("i2", "p2", "Home"), ("i3", "p3", "Home")]
    (data / "manifest.csv").write_text(
        "image_id,product_id,category,path\n"
        + "".join(f"{i},{p},{c},images/{i}.png\n" for i, p, c in rows), encoding="utf-8")
    return run, data


def test_read_split_images_keeps_split_order_and_label_indices(run_and_data):
    run, data = run_and_data

    paths, labels = read_split_images(run, data, "test")

    assert paths == [data / "images" / "i3.png", data / "images" / "i1.png"]
    assert labels == [1, 0]


def test_read_split_images_limit_spaces_evenly(run_and_data):
    run, data = run_and_data

    paths, labels = read_split_images(run, data, "train", limit=2)

    assert [p.stem for p in paths] == ["i0", "i2"]  # every second of four
    assert labels == [1, 1]
    assert len(read_split_images(run, data, "train", limit=10)[0]) == 4


def test_read_split_images_refuses_an_empty_split(run_and_data):
    run, data = run_and_data

    with pytest.raises(SplitError, match="has no val images"):
        read_split_images(run, data, "val")


def test_read_split_images_names_a_missing_manifest(run_and_data, tmp_path):
    run, _ = run_and_data

    with pytest.raises(SplitError, match=f"{tmp_path / 'elsewhere' / 'manifest.csv'} is missing.*--data"):
        read_split_images(run, tmp_path / "elsewhere", "test")


def test_read_split_images_names_an_unknown_split(run_and_data):
    run, data = run_and_data

    with pytest.raises(SplitError, match="cannot read the holdout split of .*split.json"):
        read_split_images(run, data, "holdout")


def test_read_split_images_refuses_a_dataset_that_does_not_fit(run_and_data):
    run, data = run_and_data
    (data / "manifest.csv").write_text("image_id,product_id,category,path\n"
                                       "i1,p1,Appliances,images/i1.png\ni3,p3,Toys,images/i3.png\n")

    with pytest.raises(SplitError, match=r"1 test image\(s\) such as 'i3' are missing or have an unknown "):
        read_split_images(run, data, "test")


def test_run_data_dir_reads_config_or_says_to_pass_data(run_and_data, tmp_path):
    run, data = run_and_data

    with pytest.raises(SplitError, match=f"cannot tell which dataset {run} was trained on.*--data"):
        run_data_dir(run)
    (run / "config.json").write_text(json.dumps({
        "model": "cnn", "data": str(data), "seed": 0, "epochs": 1, "batch_size": 2, "workers": 0,
        "image_size": 32, "num_classes": 2}))
    assert run_data_dir(run) == data
