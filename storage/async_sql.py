"""The hot path's statements from the event loop itself, on PostgreSQL: asynchronous connections
(psycopg's), beside Django's.

Scaled out, a send or a receipt is one statement (broker/services/send.py, receipts.py), yet run
through Django it hopped to a database thread and back: a wake-up of another thread each way, and
on the way back a wait for the GIL the busy event loop holds. Back to back, a prepared statement
took 0.13 ms from the loop against 0.21 ms through a thread, and 0.20 against 0.37 ms after 20 ms
idle (docs/performance.md, change 32). Only a websocket's frequent statements come here (a send,
a receipt, a typing notice, a browser session's check, the periodic credential check, and at
connect and close the token or browser session, the presence audience, the last seen and
whether anything was missed); everything else, the rare paths of the same calls included, stays with Django in the
database threads.

The connections are opened with Django's own parameters (the same database, user, options, type
adapters and time zone) and live as Django's do: as long as its pool's (`max_lifetime`, an hour)
or, without a pool, `CONN_MAX_AGE` seconds (0: one per statement; None: as long as the process),
and one that failed is closed. Each event loop has its own (connections belong to the loop that
opened them), at most `MESSENGER_DB_THREADS` in use at once.

Written here rather than with psycopg_pool: that pool keeps maintenance tasks running on the loop
that opened it and its connections open between uses; this needs a handful of connections with
Django's lifetime rules, one statement per use, on whichever loop asks.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass, field

import psycopg
from psycopg import sql as psql
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

from storage.sql import PREPARE_ONLY_WHEN_ASKED

logger = logging.getLogger(__name__)


def enabled() -> bool:
    """Whether the event loop may run statements itself: PostgreSQL, unless
    MESSENGER_PG_ON_EVENT_LOOP=0, and nothing watching Django's queries (DEBUG's log, tests that
    count queries), which would not see these."""
    db = connections[DEFAULT_DB_ALIAS]
    return db.vendor == "postgresql" and settings.MESSENGER["PG_ON_EVENT_LOOP"] \
        and not db.queries_logged and not db.execute_wrappers


@dataclass
class _Idle:
    connection: psycopg.AsyncConnection
    opened_at: float


@dataclass
class _LoopConnections:
    slots: asyncio.Semaphore
    idle: list[_Idle] = field(default_factory=list)


_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopConnections] = weakref.WeakKeyDictionary()


def _connections() -> _LoopConnections:
    loop = asyncio.get_running_loop()
    pool = _by_loop.get(loop)
    if pool is None:
        pool = _by_loop[loop] = _LoopConnections(asyncio.Semaphore(max(1, settings.MESSENGER["DB_THREADS"])))
    return pool


async def _connect() -> psycopg.AsyncConnection:
    db = connections[DEFAULT_DB_ALIAS]
    params = db.get_connection_params()
    params.pop("cursor_factory", None)  # Django's is a synchronous cursor class
    role = db.settings_dict["OPTIONS"].get("assume_role")
    connection = await psycopg.AsyncConnection.connect(**params, autocommit=True)
    connection.prepare_threshold = PREPARE_ONLY_WHEN_ASKED
    # What Django's init_connection_state does for its connections.
    await connection.execute("SELECT set_config('TimeZone', %s, false)", [db.timezone_name])
    if role:
        await connection.execute(psql.SQL("SET ROLE {}").format(psql.Identifier(role)))
    return connection


# psycopg_pool's default `max_lifetime`, for a pool that does not set one.
_POOL_MAX_LIFETIME = 3600.0


def _max_age() -> float | None:
    """How long a connection here may live: as long as Django's own, which with a pool (where
    CONN_MAX_AGE is 0, every use returning the connection to it) is the pool's `max_lifetime`."""
    settings_dict = connections[DEFAULT_DB_ALIAS].settings_dict
    pool = settings_dict["OPTIONS"].get("pool")
    if pool:
        return float(pool.get("max_lifetime", _POOL_MAX_LIFETIME)) if isinstance(pool, dict) else _POOL_MAX_LIFETIME
    return settings_dict["CONN_MAX_AGE"]


def _expired(idle: _Idle) -> bool:
    max_age = _max_age()
    return max_age is not None and time.monotonic() - idle.opened_at >= max_age


async def rows(sql: str, params: list) -> list[tuple]:
    """Run one statement, committed on its own (autocommit); its rows. Raises psycopg's errors."""
    pool = _connections()
    async with pool.slots:
        idle = pool.idle.pop() if pool.idle else None
        if idle is None or idle.connection.closed or _expired(idle):
            if idle is not None:
                await idle.connection.close()
            idle = _Idle(await _connect(), time.monotonic())
        try:
            cursor = await idle.connection.execute(sql, params, prepare=settings.MESSENGER["PG_PREPARED_STATEMENTS"])
            result = await cursor.fetchall()
        except BaseException:
            await idle.connection.close()  # its state is unknown: never reused
            raise
        if _expired(idle):
            await idle.connection.close()
        else:
            pool.idle.append(idle)
        return result


async def rows_or_none(sql: str, params: list, *, asking: str) -> list[tuple] | None:
    """`rows`, or None where the loop may not run statements (`enabled`) or the statement failed
    (logged, as `asking`): callers then hand the same question to a database thread, whose
    answer is the same, so a failure here costs a hop and never an answer."""
    if not enabled():
        return None
    try:
        return await rows(sql, params)
    except psycopg.Error:
        logger.warning("%s on the event loop failed; handing it to a database thread", asking, exc_info=True)
        return None
