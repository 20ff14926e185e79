"""SQLite: write-ahead-log checkpoints in a background thread, not inside commits on the event loop.

SQLite copies the WAL back into the database file (a checkpoint) from inside whichever commit
takes the log past `wal_autocheckpoint` pages (1,000 by default), with an fsync. The websocket
path commits on the event loop itself (frontdesk/db.py), so every few hundred messages one commit
did that work with every connection of the process waiting: in profiling runs, one-to-one chats at
1,500 messages a second built a queue (p50 0.3-0.5 s). Letting the log grow instead (a larger
`wal_autocheckpoint`) made each checkpoint longer and reads slower, since a reader looks pages up
in the log's index.

So a connection that commits on the loop stops checkpointing (`wal_autocheckpoint=0`) and a
daemon thread of the process runs a PASSIVE checkpoint of the file every CHECKPOINT_INTERVAL on a
connection of its own. PASSIVE waits for no lock: it copies what no reader still needs and leaves
the rest for the next round; the sqlite3 module lets go of the GIL while SQLite works, so the copy
and the fsync happen beside the event loop. Other connections (HTTP requests, the task worker)
keep SQLite's automatic checkpoints, which the thread leaves little to do. No library does this;
it is a loop around one pragma.
"""

import logging
import sqlite3
import threading
import time
from urllib.parse import quote

logger = logging.getLogger(__name__)

CHECKPOINT_INTERVAL = 0.1  # seconds: the log stays at a few megabytes at 1,500 messages a second

_paths: set[str] = set()
_lock = threading.Lock()
_thread: threading.Thread | None = None


def checkpoint_in_background(connection: sqlite3.Connection, path: str) -> bool:
    """Stop `connection` checkpointing inside its commits and have the background thread checkpoint
    `path` instead. False (and nothing changed) unless the database is a file in WAL mode."""
    if connection.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        return False
    connection.execute("PRAGMA wal_autocheckpoint=0")
    global _thread
    with _lock:
        _paths.add(path)
        if _thread is None:
            _thread = threading.Thread(target=_run, name="sqlite-wal-checkpoint", daemon=True)
            _thread.start()
    return True


def checkpointed_in_background(path: str) -> bool:
    with _lock:
        return path in _paths


def checkpoint(path: str) -> tuple[int, int, int] | None:
    """One PASSIVE checkpoint of the database at `path`: SQLite's (busy, frames in the log, frames
    checkpointed), or None when the file is gone."""
    try:
        # mode=rw: a database deleted meanwhile (a test's) is not created again, empty.
        connection = sqlite3.connect(f"file:{quote(path)}?mode=rw", uri=True, timeout=0, isolation_level=None)
    except sqlite3.OperationalError:
        return None
    try:
        return connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    finally:
        connection.close()


def _run() -> None:
    while True:
        time.sleep(CHECKPOINT_INTERVAL)
        with _lock:
            paths = list(_paths)
        for path in paths:
            try:
                if checkpoint(path) is None:
                    with _lock:
                        _paths.discard(path)
            except sqlite3.Error:  # busy with another checkpoint, say: the next round will do
                logger.debug("checkpoint of %s skipped", path, exc_info=True)
