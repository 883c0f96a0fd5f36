"""Who may delete an index generation, and when: readers hold a lease, builds hold a lock.

A reader (the proxy's :class:`search.SearchEngine`) opens a generation's files lazily -- SQLite
once per thread, on the thread's first query -- so a generation must stay on disk for as long as
any engine of it is alive, in any process. Each engine holds a shared ``flock`` on its
generation's ``meta.json`` (:class:`Lease`) from before it reads anything until it is garbage
(the open file closes with it; a killed process's locks go with it). A build deletes an old
generation only while it holds the exclusive lock on that file (:func:`delete_unused`), so it
never deletes one a reader holds, and a reader that locks a generation just being deleted finds
it gone and says so instead of reading half of it.

One build at a time: :class:`BuildLock` is an exclusive ``flock`` on ``INDEX_DIR/.building``
(atomic: two builds cannot both pass a check and then both write), the holder's pid written
inside for the proxy's "being built" answer.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from pathlib import Path

from common.atomic import fsync_dir
from common.cli import UserError

LEASED_FILE = "meta.json"  # every complete generation has one; a reader reads it first


class GenerationGone(OSError):
    """The generation was deleted before the reader could lease it."""


class Lease:
    """A shared lock on one generation: while it is open, no build deletes the generation."""

    def __init__(self, generation: Path) -> None:
        self._fd = -1
        try:
            self._fd = os.open(Path(generation) / LEASED_FILE, os.O_RDONLY)
        except FileNotFoundError:
            raise GenerationGone(f"generation {Path(generation).name} is gone") from None
        fcntl.flock(self._fd, fcntl.LOCK_SH)  # waits out a deletion in progress
        if not (Path(generation) / LEASED_FILE).exists():
            self.close()
            raise GenerationGone(f"generation {Path(generation).name} was deleted")

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # releases the lock
            self._fd = -1

    def __del__(self) -> None:
        self.close()


def delete_unused(generation: Path) -> bool:
    """Delete ``generation`` unless a reader leases it; True when deleted."""
    path = Path(generation) / LEASED_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # an unfinished generation: nobody can be reading it
        shutil.rmtree(generation, ignore_errors=True)
        return True
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        shutil.rmtree(generation, ignore_errors=True)  # still holding the lock: readers wait
        return True
    finally:
        os.close(fd)


def sync_tree(directory: Path) -> None:
    """fsync every file under ``directory``, then the directories: durable before it goes live."""
    for root, _, files in os.walk(directory):
        for name in files:
            fd = os.open(Path(root) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(root))
    fsync_dir(Path(directory).parent)


class BuildLock:
    """Held while a build writes into ``index_dir``: one build at a time (see the docstring)."""

    def __init__(self, index_dir: Path, lock_file: str) -> None:
        self.path = Path(index_dir) / lock_file
        self._fd = -1

    def __enter__(self) -> BuildLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            other = holder_pid(self.path)
            raise UserError(f"another build (pid {other}) is writing {self.path.parent}; wait "
                            "for it to finish") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "started": time.time()}).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        # Emptied, not unlinked: a build waiting on this file's lock must lock the file the
        # next build will lock too.
        os.ftruncate(self._fd, 0)
        os.close(self._fd)
        self._fd = -1


def holder_pid(lock_path: Path) -> int | None:
    """The pid of the build holding ``lock_path``, or None when no build holds it."""
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # held: a build runs
            try:
                return int(json.loads(os.pread(fd, 4096, 0))["pid"])
            except (ValueError, KeyError, TypeError):
                return -1  # held but its pid not written yet
        return None
    finally:
        os.close(fd)
