"""Progress of a training run: bars on a terminal, plain lines in a log.

On a terminal (stderr is a TTY) an epoch bar and, under it, a batch bar with the running loss.
Written to a file or a pipe, a bar would be hundreds of carriage-return fragments, so there the
run prints plain lines instead: one per epoch (always) and, inside an epoch, one every
:data:`LINE_INTERVAL_S` seconds (a ResNet-50 epoch on a CPU takes minutes). Only rank 0 of a
``torchrun`` job shows anything.
"""

import sys
import time
from collections.abc import Iterable

from tqdm import tqdm

LINE_INTERVAL_S = 60.0


def is_terminal() -> bool:
    return sys.stderr.isatty()


def log(line: str) -> None:
    """Print a line above any bar (``tqdm.write``), flushed so a log follows the run."""
    tqdm.write(line, file=sys.stdout)
    sys.stdout.flush()


def epochs(start: int, end: int, show: bool) -> Iterable[int]:
    """``start..end`` inclusive, with an epoch bar on a terminal."""
    numbers = range(start, end + 1)
    if not (show and is_terminal()):
        return numbers
    return tqdm(numbers, desc="epochs", unit="epoch", initial=start - 1, total=end,
                dynamic_ncols=True)


class BatchProgress:
    """A batch bar on a terminal, a plain line every ``interval`` seconds elsewhere."""

    def __init__(self, total: int, desc: str, show: bool,
                 interval: float = LINE_INTERVAL_S) -> None:
        self.total, self.desc, self.interval = total, desc, interval
        self.done = 0
        self.bar = (tqdm(total=total, desc=desc, unit="batch", leave=False, dynamic_ncols=True)
                    if show and is_terminal() else None)
        self.lines = show and self.bar is None
        self.started = self.last_line = time.perf_counter()

    def update(self, loss: float, images: int) -> None:
        """One batch done; ``loss`` is the running mean, ``images`` the count so far."""
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            self.bar.update()
            return
        now = time.perf_counter()
        if self.lines and now - self.last_line >= self.interval and self.done < self.total:
            self.last_line = now
            log(f"{self.desc}: batch {self.done}/{self.total}, loss {loss:.4f}, "
                f"{images / (now - self.started):.1f} images/s")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
