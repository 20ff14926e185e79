"""`database_sync_to_async` for the websocket path, with several database threads on PostgreSQL.

Channels runs every database call of a process in one shared thread (`thread_sensitive=True`).
That suits SQLite, whose writers queue on one lock anyway. On PostgreSQL it leaves the whole
process waiting on one connection's round trips: in the benchmark that thread was busy 100% of the
time, mostly waiting for answers, while the process used a fraction of a core. There, calls run in
a pool of `MESSENGER_DB_THREADS` threads instead, each with its own persistent connection.

A consumer still awaits each call before handling its next frame, so one connection's frames keep
their order; transactions of different connections already ran concurrently across processes.
"""

from concurrent.futures import ThreadPoolExecutor

from channels.db import DatabaseSyncToAsync
from django.conf import settings
from django.db import connections

_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor | None:
    global _pool
    if connections["default"].vendor == "sqlite" or settings.MESSENGER["DB_THREADS"] <= 1:
        return None
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=settings.MESSENGER["DB_THREADS"], thread_name_prefix="db")
    return _pool


def database_sync_to_async(func):
    executor = _executor()
    if executor is None:
        return DatabaseSyncToAsync(func)
    return DatabaseSyncToAsync(func, thread_sensitive=False, executor=executor)
