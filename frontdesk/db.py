"""`database_sync_to_async` for the websocket path, with several database threads on PostgreSQL.

Channels runs every database call of a process in one shared thread (`thread_sensitive=True`).
That suits SQLite, whose writers queue on one lock anyway. On PostgreSQL it leaves the whole
process waiting on one connection's round trips: in the benchmark that thread was busy 100% of the
time, mostly waiting for answers, while the process used a fraction of a core. There, calls run in
a pool of `MESSENGER_DB_THREADS` threads instead, each taking a connection from the process's pool
for the call (MESSENGER_DB_POOL_SIZE; the pool checks it as it hands it out) or, without that pool,
keeping a persistent connection of its own.

(A device's sends and receipts skip the hop altogether: their one statement runs on the event
loop, on connections of its own: storage/async_sql.py.)

A consumer still awaits each call before handling its next frame, so one connection's frames keep
their order; transactions of different connections already ran concurrently across processes.

Without the pool, with CONN_HEALTH_CHECKS (on for DATABASE_URL), Django checks a persistent
connection with a round trip of its own at the start of every "request", and each call here is one:
a websocket frame paid for a `SELECT 1` before its real work. A connection that answered in the
last HEALTH_CHECK_SECONDS is taken as healthy instead. If it broke meanwhile, that one call fails
(the client's frame gets an error and its retry, with the same client_id, is safe) and Django
closes the connection after it, so the next call opens a fresh one.

On SQLite, the short calls every frame makes (a handful of indexed statements, tens of
microseconds each, never waiting on a network) run on the event loop's own thread instead. Handed
to the database thread, each call paid more than its work: the hop there and back, and, for every
statement, winning the GIL back from the busy event loop (SQLite lets go of it around each step).
That thread was the bottleneck: in the benchmark, one-to-one chats topped out at 350-500 messages a
second with the process under one core; on the loop, 800, and 1,000-1,200 with the statements sent
straight to the driver (storage/sql.py; docs/performance.md). The cost is that the loop stands
still while a call runs, and while it waits for SQLite's write lock when another connection (an
HTTP request's thread, the task worker) holds it: a write there takes a millisecond. Calls that
may take long (a reconnecting user's backlog) still go to the thread, and the WAL checkpoints
SQLite would run inside a commit now and then go to a thread of their own (storage/sqlite_wal.py).
MESSENGER_SQLITE_ON_EVENT_LOOP=0 sends every call to the database thread.
"""

import asyncio
import functools
import time
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import SyncToAsync
from channels.db import DatabaseSyncToAsync
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, OperationalError, close_old_connections, connections
from psycopg_pool import PoolTimeout

from broker.publish import called_from_loop, send_collected
from storage.sqlite_wal import checkpoint_in_background

HEALTH_CHECK_SECONDS = 1.0

_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor | None:
    global _pool
    if connections["default"].vendor == "sqlite" or settings.MESSENGER["DB_THREADS"] <= 1:
        return None
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=settings.MESSENGER["DB_THREADS"], thread_name_prefix="db")
    return _pool


class _DatabaseCall(DatabaseSyncToAsync):
    def thread_handler(self, loop, *args, **kwargs):
        close_old_connections()  # makes the next query health-check the connection again
        trusted = []
        for connection in connections.all(initialized_only=True):
            answered_at = getattr(connection, "messenger_answered_at", None)
            if connection.connection is not None and answered_at is not None \
                    and time.monotonic() - answered_at < HEALTH_CHECK_SECONDS:
                connection.health_check_done = True
                trusted.append(connection)
        try:
            return SyncToAsync.thread_handler(self, loop, *args, **kwargs)
        finally:
            for connection in connections.all(initialized_only=True):
                # Checked (or newly opened) during this call, and no error since: it answered.
                if connection not in trusted and connection.connection is not None \
                        and connection.health_check_done and not connection.errors_occurred:
                    connection.messenger_answered_at = time.monotonic()
            close_old_connections()


class _OnEventLoop:
    """Runs a short synchronous database call on the event loop's thread (SQLite only)."""

    def __init__(self, func):
        self.func = func
        functools.update_wrapper(self, func)

    def __get__(self, instance, owner):  # as a method decorator, like channels' database_sync_to_async
        return self if instance is None else functools.partial(self.__call__, instance)

    async def __call__(self, *args, **kwargs):
        loop = asyncio.get_running_loop()
        # Django refuses database work on a thread that runs an event loop, to keep blocking calls
        # off it by mistake; this one is on purpose, so the loop is out of sight for its duration
        # (nothing in the call awaits, so no other task runs meanwhile).
        asyncio._set_running_loop(None)
        collected = None
        try:
            with called_from_loop(loop, collect=True) as collected:
                return self.func(*args, **kwargs)
        finally:
            close_old_connections()  # as after a request: drops a connection an error left unusable
            _checkpoints_off_the_loop()
            asyncio._set_running_loop(loop)
            send_collected(loop, collected)  # what the call published (and committed) goes out now


def _checkpoints_off_the_loop() -> None:
    """The loop's SQLite connection leaves WAL checkpoints to a background thread (storage/sqlite_wal.py)."""
    db = connections[DEFAULT_DB_ALIAS]
    if db.connection is not None and getattr(db, "messenger_checkpoints_moved", None) is not db.connection:
        checkpoint_in_background(db.connection, db.settings_dict["NAME"])
        db.messenger_checkpoints_moved = db.connection  # once per connection: a new one starts with SQLite's default


def _on_event_loop() -> bool:
    return connections["default"].vendor == "sqlite" and settings.MESSENGER["SQLITE_ON_EVENT_LOOP"]


def database_sync_to_async(func=None, *, may_take_long: bool = False):
    """Run `func`'s database work from async code: on the event loop for SQLite's short calls,
    otherwise in the database thread (SQLite) or pool (PostgreSQL).

    `may_take_long`: the call's work grows with the data (a backlog of unknown size), so it must
    not hold up the event loop.
    """
    if func is None:
        return functools.partial(database_sync_to_async, may_take_long=may_take_long)
    if not may_take_long and _on_event_loop():
        return _OnEventLoop(func)
    executor = _executor()
    if executor is None:
        return _DatabaseCall(func)
    return _DatabaseCall(func, thread_sensitive=False, executor=executor)


# What a client is told, and how many seconds it is asked to wait, when the server has no database
# connection free (REST: 503 `busy`; websocket: an error `busy`).
BUSY_MESSAGE = "The server is busy; try again in a moment."
BUSY_RETRY_AFTER = 1


def no_connection_free(exc: BaseException) -> bool:
    """The process's PostgreSQL pool had no connection free within its timeout, every one busy
    (MESSENGER_DB_POOL_SIZE, MESSENGER_DB_POOL_TIMEOUT). A request or a frame takes its connection
    at its first query and keeps it, so nothing was stored and sending it again is safe: the REST
    APIs answer 503 `busy`, the websocket a `busy` error."""
    return isinstance(exc, OperationalError) and isinstance(exc.__cause__, PoolTimeout)
