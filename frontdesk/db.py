"""`database_sync_to_async` for the websocket path, with several database threads on PostgreSQL.

Channels runs every database call of a process in one shared thread (`thread_sensitive=True`).
That suits SQLite, whose writers queue on one lock anyway. On PostgreSQL it leaves the whole
process waiting on one connection's round trips: in the benchmark that thread was busy 100% of the
time, mostly waiting for answers, while the process used a fraction of a core. There, calls run in
a pool of `MESSENGER_DB_THREADS` threads instead, each with its own persistent connection.

A consumer still awaits each call before handling its next frame, so one connection's frames keep
their order; transactions of different connections already ran concurrently across processes.

With CONN_HEALTH_CHECKS (on for DATABASE_URL), Django checks a persistent connection with a round
trip of its own at the start of every "request", and each call here is one: a websocket frame paid
for a `SELECT 1` before its real work. A connection that answered in the last
HEALTH_CHECK_SECONDS is taken as healthy instead. If it broke meanwhile, that one call fails (the
client's frame gets an error and its retry, with the same client_id, is safe) and Django closes
the connection after it, so the next call opens a fresh one.
"""

import time
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import SyncToAsync
from channels.db import DatabaseSyncToAsync
from django.conf import settings
from django.db import close_old_connections, connections

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


def database_sync_to_async(func):
    executor = _executor()
    if executor is None:
        return _DatabaseCall(func)
    return _DatabaseCall(func, thread_sensitive=False, executor=executor)
