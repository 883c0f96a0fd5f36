"""proxy.server runs the numeric libraries single-threaded unless told otherwise."""

from proxy import server


def test_numeric_libraries_default_to_one_thread(monkeypatch):
    for name in server.SINGLE_THREADED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")  # an explicit choice is kept

    server.single_threaded_numerics()

    assert server.os.environ["OMP_NUM_THREADS"] == "1"
    assert server.os.environ["MKL_NUM_THREADS"] == "1"
    assert server.os.environ["OPENBLAS_NUM_THREADS"] == "2"
