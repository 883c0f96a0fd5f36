"""Index generations under readers: never deleted while read, a broken one never served nor
re-read, durable before they go live, one build at a time, a damaged cache rebuilt."""

import io
import itertools
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from common.cli import UserError
from search import generations, layout
from search.embedders import EmbeddingCache
from search.engine import SearchEngine, SearchRequest
from search.holder import EngineHolder
from search.errors import IndexUnavailable


@pytest.fixture
def index(search_index, tmp_path) -> Path:
    shutil.copytree(search_index["index"], tmp_path / "index")
    return tmp_path / "index"


def republish(index: Path, times: int) -> list[Path]:
    """``times`` new generations (copies of the live one), each published in turn."""
    published = []
    for _ in range(times):
        source = layout.current_generation(index)
        serial = next(SERIALS)
        generation = index / f"gen-29990101T000000-{serial:06x}"
        shutil.copytree(source, generation)
        os.utime(generation, (2e9 + serial, 2e9 + serial))  # newer than every earlier one
        layout.publish(index, generation)
        published.append(generation)
    return published


SERIALS = itertools.count(1)


def search_in_a_new_thread(engine: SearchEngine) -> list:
    """A query on a thread that has never used ``engine``: it opens the SQLite file now."""
    result: list = []
    thread = threading.Thread(target=lambda: result.append(
        engine.search(SearchRequest(text="kettle", k=3)).hits))
    thread.start()
    thread.join()
    return result


def test_publishing_never_deletes_a_generation_a_reader_uses(index):
    reader = SearchEngine.open(index)

    republish(index, 4)  # more than GENERATIONS_KEPT: the reader's is the oldest

    assert reader.generation.is_dir()
    assert search_in_a_new_thread(reader) and search_in_a_new_thread(reader)[0]


def test_a_generation_no_reader_uses_is_deleted_at_the_next_publish(index):
    reader = SearchEngine.open(index)
    first = reader.generation
    republish(index, 3)
    del reader  # the last reference: its lease goes with it

    republish(index, 1)

    assert not first.exists()
    assert len(layout.all_generations(index)) == layout.GENERATIONS_KEPT


def test_broken_live_generation_falls_back_and_is_read_once(index, monkeypatch):
    good = layout.current_generation(index)
    broken = index / "gen-29990101T000000-badbad"
    shutil.copytree(good, broken)
    (broken / layout.META_FILE).write_text("{not json")
    (index / layout.CURRENT_FILE).write_text(broken.name + "\n")
    loads: list[Path] = []
    real_init = SearchEngine.__init__

    def counting_init(self, generation, *args, **kwargs):
        loads.append(Path(generation))
        real_init(self, generation, *args, **kwargs)

    monkeypatch.setattr(SearchEngine, "__init__", counting_init)
    holder = EngineHolder(index)

    engines = [holder.get() for _ in range(5)]

    assert {engine.generation for engine in engines} == {good}  # the newest good one
    assert loads.count(broken) == 1  # tried once, not at every request


def test_every_generation_broken_is_503_saying_so(index):
    for generation in layout.all_generations(index):
        (generation / layout.META_FILE).write_text("{not json")

    with pytest.raises(IndexUnavailable, match="cannot be read"):
        EngineHolder(index).get()


def test_publish_fsyncs_every_file_before_current_moves(index, monkeypatch):
    synced: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    current_moved_after: list[int] = []

    def recording_fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    def recording_replace(src, dst):
        if Path(dst).name == layout.CURRENT_FILE:
            current_moved_after.append(len(synced))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", recording_replace)
    source = layout.current_generation(index)
    generation = index / "gen-29990101T000000-000001"
    shutil.copytree(source, generation)

    layout.publish(index, generation)

    before_current = synced[:current_moved_after[0]]
    for path in generation.iterdir():
        assert str(path) in before_current, f"{path.name} not fsynced before CURRENT moved"
    assert str(generation) in before_current


def test_build_lock_is_exclusive_even_within_one_process(tmp_path):
    with layout.build_lock(tmp_path):
        second = layout.build_lock(tmp_path)
        with pytest.raises(UserError, match=f"another build \\(pid {os.getpid()}\\)"):
            second.__enter__()
        assert layout.building_pid(tmp_path) == os.getpid()
    assert layout.building_pid(tmp_path) is None
    with layout.build_lock(tmp_path):  # free again once released
        pass


def test_build_lock_of_a_killed_build_is_free(tmp_path):
    child = os.fork()
    if child == 0:  # a build that dies holding the lock
        lock = generations.BuildLock(tmp_path, layout.LOCK_FILE)
        lock.__enter__()
        os._exit(0)
    os.waitpid(child, 0)

    assert layout.building_pid(tmp_path) is None
    with layout.build_lock(tmp_path):
        pass


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.mark.parametrize("damage", ["truncated", "not a zip"])
def test_damaged_embedding_cache_file_is_rebuilt_not_fatal(tmp_path, damage):
    data = _npz(keys=np.array(["a", "b"]), vectors=np.ones((2, 4), np.float32))
    path = tmp_path / "cache.npz"
    path.write_bytes(data[:len(data) // 2] if damage == "truncated" else b"PK\x03\x04" + b"x" * 99)

    cache = EmbeddingCache(path)

    assert cache.get("a") is None  # embedded again
    cache.put("a", np.zeros(4, np.float32))
    cache.save()
    assert EmbeddingCache(path).get("a") is not None


def test_damaged_embedding_cache_entry_is_embedded_again(tmp_path):
    vectors = np.ones((2, 4), np.float32)
    vectors[1, 2] = np.nan
    path = tmp_path / "cache.npz"
    path.write_bytes(_npz(keys=np.array(["good", "bad"]), vectors=vectors))

    cache = EmbeddingCache(path)

    assert cache.get("good") is not None
    assert cache.get("bad") is None and cache.hits == 1
