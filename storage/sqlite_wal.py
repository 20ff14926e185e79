"""SQLite: write-ahead-log checkpoints in a background thread, not inside commits on the event loop.

SQLite copies the WAL back into the database file (a checkpoint) from inside whichever commit
takes the log past `wal_autocheckpoint` pages (1,000 by default), with an fsync. The websocket
path commits on the event loop itself (frontdesk/db.py), so every few hundred messages one commit
did that work with every connection of the process waiting: in profiling runs, one-to-one chats at
1,500 messages a second built a queue (p50 0.3-0.5 s). Letting the log grow instead (a larger
`wal_autocheckpoint`) made each checkpoint longer and reads slower, since a reader looks pages up
in the log's index.

So a connection that commits on the loop stops checkpointing (`wal_autocheckpoint=0`) and a
daemon thread of the process looks at the file every CHECKPOINT_INTERVAL and, once the log holds
CHECKPOINT_PAGES pages not yet copied (SQLite's own trigger), runs a PASSIVE checkpoint on a
connection of its own. PASSIVE waits for no lock: it copies what no reader still needs and leaves
the rest for the next round; the sqlite3 module lets go of the GIL while SQLite works, so the copy
and the fsync happen beside the event loop. Other connections (HTTP requests, the task worker)
keep SQLite's automatic checkpoints at the same 1,000 pages, off the loop too; whichever looks
first does the copy.

Why not checkpoint every round, whatever the log holds: once a checkpoint has copied the whole
log, the next commit starts the log over from its beginning, and that commit writes a new log
header and fsyncs it before anything else (SQLite does, so that a power cut cannot mix two
generations of the log). At a few messages a second every round copied everything, and every
message's commit, on the event loop, waited for that fsync: 0.5 ms of a one-to-one message's
2 ms in the benchmark (docs/performance.md). With the threshold the log starts over once per
thousand pages, as with SQLite's default.

How many pages wait is read from the wal-index (the `-shm` file every connection maps): its
header's `mxFrame` (frames in the log) less `nBackfill` (frames already copied), both documented
in SQLite's WAL format (https://sqlite.org/walformat.html). The file is read through a descriptor
kept open (see `_wal_indexes`: closing one would drop SQLite's locks). A torn read of a header
being rewritten only moves one round's decision; a database with no `-shm` file (exclusive
locking mode) is checkpointed every round. No library does this; it is a loop around one
pragma.
"""

import logging
import os
import sqlite3
import struct
import threading
import time
from urllib.parse import quote

logger = logging.getLogger(__name__)

CHECKPOINT_INTERVAL = 0.1  # seconds: the log stays at a few megabytes at 1,500 messages a second
CHECKPOINT_PAGES = 1000  # SQLite's default wal_autocheckpoint

# The wal-index header (https://sqlite.org/walformat.html#the_wal_index_file_format): two copies of
# a 48-byte header, then the checkpoint information; fields in the machine's byte order.
_MX_FRAME_OFFSET = 16
_N_BACKFILL_OFFSET = 96

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


# The wal-index of each database, open for as long as SQLite may hold locks on it: closing any
# descriptor of a file drops every POSIX lock the process holds on that file, SQLite's included
# (https://sqlite.org/howtocorrupt.html#_posix_advisory_locks_canceled_by_a_separate_thread_doing_close_).
# A descriptor is closed only once its file is gone or replaced: SQLite removes the wal-index when
# the last connection to the database, in any process, closes, so nobody holds locks on it then.
_wal_indexes: dict[str, tuple[int, int]] = {}  # path -> (descriptor, inode)


def _wal_index(path: str) -> int | None:
    shm = f"{path}-shm"
    try:
        inode = os.stat(shm).st_ino
    except OSError:
        inode = None
    held = _wal_indexes.get(path)
    if held is not None and held[1] == inode:
        return held[0]
    _forget_wal_index(path)
    if inode is None:
        return None
    try:
        descriptor = os.open(shm, os.O_RDONLY)
    except OSError:
        return None
    _wal_indexes[path] = (descriptor, os.fstat(descriptor).st_ino)
    return descriptor


def _forget_wal_index(path: str) -> None:
    """Close the descriptor held for `path`: only once its wal-index is gone or replaced (see above)."""
    held = _wal_indexes.pop(path, None)
    if held is not None:
        os.close(held[0])


def pages_to_checkpoint(path: str) -> int | None:
    """Pages in the log of the database at `path` that no checkpoint has copied yet, or None when
    its wal-index cannot be read."""
    with _lock:
        descriptor = _wal_index(path)
        if descriptor is None:
            return None
        try:
            header = os.pread(descriptor, _N_BACKFILL_OFFSET + 4, 0)
        except OSError:
            return None
    if len(header) < _N_BACKFILL_OFFSET + 4:
        return None
    (in_log,) = struct.unpack_from("=I", header, _MX_FRAME_OFFSET)
    (copied,) = struct.unpack_from("=I", header, _N_BACKFILL_OFFSET)
    return max(0, in_log - copied)


def _run() -> None:
    while True:
        time.sleep(CHECKPOINT_INTERVAL)
        with _lock:
            paths = list(_paths)
        for path in paths:
            waiting = pages_to_checkpoint(path)
            if waiting is not None and waiting < CHECKPOINT_PAGES:
                continue
            try:
                if checkpoint(path) is None:  # the database is gone
                    with _lock:
                        _paths.discard(path)
                        _forget_wal_index(path)
            except sqlite3.Error:  # busy with another checkpoint, say: the next round will do
                logger.debug("checkpoint of %s skipped", path, exc_info=True)
