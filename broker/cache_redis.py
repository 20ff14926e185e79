"""The Redis behind Django's cache (scaled out), for what the cache API cannot do: a script, one
atomic command in one round trip, and commands from the event loop itself.

Django's RedisCache takes a round trip per call (`incr` two: it asks whether the key exists
first) and is synchronous, so a websocket's cache calls went to a database thread. Both helpers
answer None for any other cache backend (local memory, embedded): callers then use the cache API.
Keys are the cache's own (`cache.make_and_validate_key`) and integers are stored as Django's
RedisSerializer stores them, bare, so `cache.get` reads what these write.
"""

from __future__ import annotations

import asyncio
import weakref

import redis.asyncio
from django.core.cache import cache

_loop_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis] = weakref.WeakKeyDictionary()


def cache_key(key: str) -> str:
    return cache.make_and_validate_key(key)


def client(key: str):
    """The redis-py client behind Django's RedisCache for `key`, or None for any other backend."""
    backend = getattr(cache, "_cache", None)
    if not hasattr(backend, "get_client"):
        return None
    return backend.get_client(cache_key(key), write=True)


def loop_client() -> redis.asyncio.Redis | None:
    """An asyncio client of the cache's Redis (the server it writes to) for the running event loop,
    or None for any other backend. Each loop has its own: its connections belong to that loop."""
    backend = getattr(cache, "_cache", None)
    if not hasattr(backend, "get_client"):
        return None
    loop = asyncio.get_running_loop()
    client = _loop_clients.get(loop)
    if client is None:
        client = _loop_clients[loop] = redis.asyncio.Redis.from_url(backend._servers[0])
    return client
