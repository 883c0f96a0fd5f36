from common.sqlite import connect_durable


def test_a_durable_connection_is_wal_full_sync_with_foreign_keys(tmp_path):
    db = connect_durable(tmp_path / "x.db", busy_timeout_s=2.5)

    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 2500
    assert db.isolation_level is None  # transactions are the caller's, explicit
    db.execute("CREATE TABLE t (a)")
    assert db.execute("SELECT 1 AS one").fetchone()["one"] == 1  # rows by name
