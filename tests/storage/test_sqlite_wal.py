"""storage/sqlite_wal.py: checkpoints of the event loop's SQLite connection run in a thread of their own.

What must hold: the log's pages reach the database file without the writing connection doing it
(so the log stays small while commits stay short), nothing changes for databases not in WAL mode,
and a database file deleted meanwhile is never created again by the checkpointer.
"""

import os
import sqlite3
import time

from storage import sqlite_wal


def wal_database(path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body BLOB)")
    return connection


def write_pages(connection: sqlite3.Connection, count: int) -> None:
    for _ in range(count):
        connection.execute("INSERT INTO t (body) VALUES (randomblob(4000))")  # about a page each


def test_the_writer_stops_checkpointing_and_the_thread_copies_its_pages(tmp_path):
    path = str(tmp_path / "loop.sqlite3")
    writer = wal_database(path)
    try:
        assert sqlite_wal.checkpoint_in_background(writer, path) is True
        assert writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        assert sqlite_wal.checkpointed_in_background(path)

        write_pages(writer, 1500)  # past SQLite's own 1,000-page trigger, which no longer fires in the writer

        # Pages reach the database file only through a checkpoint; the writer no longer runs any.
        deadline = time.monotonic() + 10
        while os.path.getsize(path) < 1500 * 4000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.path.getsize(path) >= 1500 * 4000
        assert writer.execute("SELECT count(*) FROM t").fetchone()[0] == 1500
    finally:
        writer.close()


def test_a_checkpoint_copies_every_frame_no_reader_needs(tmp_path):
    path = str(tmp_path / "db.sqlite3")
    writer = wal_database(path)
    try:
        writer.execute("PRAGMA wal_autocheckpoint=0")
        write_pages(writer, 50)
        busy, in_log, checkpointed = sqlite_wal.checkpoint(path)
        assert (busy, in_log) == (0, checkpointed) and in_log >= 50
    finally:
        writer.close()


def test_databases_not_in_wal_mode_are_left_alone(tmp_path):
    path = str(tmp_path / "rollback.sqlite3")
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        assert sqlite_wal.checkpoint_in_background(connection, path) is False
        assert connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
        assert not sqlite_wal.checkpointed_in_background(path)
    finally:
        connection.close()


def test_a_deleted_database_is_not_created_again(tmp_path):
    path = tmp_path / "gone.sqlite3"
    assert sqlite_wal.checkpoint(str(path)) is None
    assert not path.exists()
