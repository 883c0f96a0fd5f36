"""training.progress: bars on a terminal, plain lines in a log."""

import pytest

from training import progress
from training.progress import BatchProgress


def test_log_without_a_terminal_is_plain_lines(capsys: pytest.CaptureFixture[str]) -> None:
    epochs = progress.epochs(2, 4, show=True)  # stderr is captured: not a terminal
    assert list(epochs) == [2, 3, 4]
    bar = BatchProgress(3, "epoch 2/4", show=True, interval=0.0)
    for step in range(3):
        bar.update(1.5 - step / 10, (step + 1) * 8)
    bar.close()
    out, err = capsys.readouterr()
    assert err == "" and "\r" not in out
    # A line per interval while the epoch runs; the last batch is the epoch's own summary line.
    assert out.splitlines()[0].startswith("epoch 2/4: batch 1/3, loss 1.5000, ")
    assert len(out.splitlines()) == 2


def test_terminal_shows_an_epoch_bar_and_a_batch_bar(capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "is_terminal", lambda: True)
    epochs = progress.epochs(1, 2, show=True)
    for epoch in epochs:
        bar = BatchProgress(4, f"epoch {epoch}/2", show=True)
        for step in range(4):
            bar.update(0.5, (step + 1) * 8)
        bar.close()
        progress.log(f"epoch {epoch}/2: done")
    epochs.close()
    out, err = capsys.readouterr()
    assert "epochs: 100%" in err and "2/2" in err and "\r" in err
    assert "epoch 1/2:" in err and "/4 [" in err and "batch/s" in err  # the batch bar (cleared)
    assert out.splitlines() == ["epoch 1/2: done", "epoch 2/2: done"]


def test_other_ranks_show_nothing(capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "is_terminal", lambda: True)
    assert list(progress.epochs(1, 2, show=False)) == [1, 2]
    bar = BatchProgress(2, "epoch 1/2", show=False, interval=0.0)
    bar.update(1.0, 8)
    bar.close()
    assert capsys.readouterr() == ("", "")
