"""bench.text drives the real trainer (prepare --products, train --model text) and reports."""

import json

from bench import text


def test_bench_text_trains_through_the_trainer_and_reports(tmp_path, capsys):
    out = tmp_path / "bench"
    results = text.main(text.get_args_parser().parse_args(
        ["--listings", "80", "--epochs", "2", "--repeats", "1", "--out", str(out)]))
    [run] = results["train_runs"]
    assert (out / "run0" / "metrics.json").is_file()  # a real run directory, not a twin loop
    saved = json.loads((out / "run0" / "metrics.json").read_text())
    assert run["train_listings"] == saved["counts"]["train"]["total"] > 50
    assert len(saved["history"]) == 2
    assert 0 < run["epochs_seconds"] < run["wall_seconds"]
    assert run["tfidf_seconds"] == saved["tfidf_logreg"]["seconds"]
    assert results["classify_listings_per_second_batch1"][0] > 0
    assert "target < 60 s" in capsys.readouterr().out
