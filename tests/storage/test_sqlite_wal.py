"""storage/sqlite_wal.py: checkpoints of the event loop's SQLite connection run in a thread of their own.

What must hold: the log's pages reach the database file without the writing connection doing it
(so the log stays small while commits stay short), a log of a few pages is left alone (copying it
all would make the next commit start the log over, with an fsync), nothing changes for databases
not in WAL mode, and a database file deleted meanwhile is never created again by the checkpointer.
"""

import os
import sqlite3
import subprocess
import sys
import time

import pytest

from storage import sqlite_wal


def wal_database(path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body BLOB)")
    return connection


@pytest.fixture
def unchecked_writer(tmp_path):
    """A database in WAL mode and a writer that never checkpoints: (path, writer)."""
    path = str(tmp_path / "db.sqlite3")
    writer = wal_database(path)
    writer.execute("PRAGMA wal_autocheckpoint=0")
    yield path, writer
    writer.close()


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
        # The thread copies once a thousand pages wait, so what is left in the log is fewer.
        deadline = time.monotonic() + 10
        while sqlite_wal.pages_to_checkpoint(path) >= sqlite_wal.CHECKPOINT_PAGES and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sqlite_wal.pages_to_checkpoint(path) < sqlite_wal.CHECKPOINT_PAGES
        assert os.path.getsize(path) >= 500 * 4000
        assert writer.execute("SELECT count(*) FROM t").fetchone()[0] == 1500
    finally:
        writer.close()


def test_a_checkpoint_copies_every_frame_no_reader_needs(unchecked_writer):
    path, writer = unchecked_writer
    write_pages(writer, 50)
    busy, in_log, checkpointed = sqlite_wal.checkpoint(path)
    assert (busy, in_log) == (0, checkpointed) and in_log >= 50


def test_the_pages_waiting_are_read_from_the_wal_index(unchecked_writer, tmp_path):
    path, writer = unchecked_writer
    write_pages(writer, 40)
    waiting = sqlite_wal.pages_to_checkpoint(path)
    busy, in_log, checkpointed = sqlite_wal.checkpoint(path)
    assert waiting == in_log >= 40 and checkpointed == in_log
    assert sqlite_wal.pages_to_checkpoint(path) == 0
    write_pages(writer, 5)  # the log starts over from its beginning
    assert 5 <= sqlite_wal.pages_to_checkpoint(path) < 40
    assert sqlite_wal.pages_to_checkpoint(str(tmp_path / "missing.sqlite3")) is None


def test_reading_the_wal_index_leaves_sqlites_locks_alone(unchecked_writer):
    """Closing a descriptor of a file drops every POSIX lock the process holds on it, SQLite's
    included: the wal-index must be read without ever closing one while SQLite uses the file."""
    path, writer = unchecked_writer
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        write_pages(writer, 5)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM t").fetchone()  # reads a snapshot that is in the log
        write_pages(writer, 5)
        for _ in range(3):
            assert sqlite_wal.pages_to_checkpoint(path) >= 10

        # Another process may not start the log over while this reader still reads from it.
        restart = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=0); "
                   "print(c.execute('PRAGMA wal_checkpoint(RESTART)').fetchone()[0])")
        busy = subprocess.run([sys.executable, "-c", restart, path], capture_output=True, text=True, check=True)
        assert busy.stdout.strip() == "1"
        assert reader.execute("SELECT count(*) FROM t").fetchone()[0] == 5
    finally:
        reader.close()


def test_a_log_of_a_few_pages_is_left_to_grow(tmp_path):
    path = str(tmp_path / "quiet.sqlite3")
    writer = wal_database(path)
    try:
        assert sqlite_wal.checkpoint_in_background(writer, path) is True
        write_pages(writer, 20)
        waiting = sqlite_wal.pages_to_checkpoint(path)
        time.sleep(sqlite_wal.CHECKPOINT_INTERVAL * 5)
        assert sqlite_wal.pages_to_checkpoint(path) == waiting >= 20
        write_pages(writer, 1)  # appended to the log, not starting it over
        assert sqlite_wal.pages_to_checkpoint(path) > waiting
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
