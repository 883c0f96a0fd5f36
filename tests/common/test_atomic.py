"""Atomic writes: the file appears whole or not at all, and no temporary file is ever left behind."""

import os

import pytest

from common.atomic import atomic_write, atomic_write_bytes, atomic_write_text


def test_atomic_write_text_round_trips_utf8(tmp_path):
    path = tmp_path / "out.txt"

    atomic_write_text(path, "café ☕\n")

    assert path.read_bytes() == "café ☕\n".encode()
    assert os.listdir(tmp_path) == ["out.txt"]


def test_atomic_write_bytes_replaces_the_previous_file(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"old contents, longer than the new")

    atomic_write_bytes(path, b"new")

    assert path.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["data.bin"]


def test_atomic_write_failure_keeps_the_old_file_and_removes_the_temp(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"previous")

    def half_then_fail(f):
        f.write(b"half of the new")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, half_then_fail)

    assert path.read_bytes() == b"previous"
    assert os.listdir(tmp_path) == ["model.pt"]


def test_atomic_write_interrupt_leaves_no_file_where_none_was(tmp_path):
    path = tmp_path / "new.json"

    def interrupted(f):
        f.write(b"{")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, interrupted)

    assert os.listdir(tmp_path) == []


def test_atomic_write_into_a_missing_directory_raises_and_leaves_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        atomic_write_text(tmp_path / "absent" / "x.txt", "x")

    assert os.listdir(tmp_path) == []
