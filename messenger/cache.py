"""Django's Redis cache with one client, and so one connection pool, per server process."""

import threading

from django.core.cache.backends.redis import RedisCache
from django.utils.functional import cached_property


class SharedRedisCache(RedisCache):
    """`django.core.cache.caches` is context-local: under ASGI every websocket connection (its own
    asyncio task, so its own context) builds its own RedisCache, and each of those its own redis-py
    pool. A process with 1,000 open sockets then held 1,000+ Redis connections, paid a connect on
    each socket's first rate-limit or presence call, and could run Redis out of client slots. The
    redis-py client and its pool are thread-safe, so all instances with the same settings share one.
    """

    _clients: dict = {}
    _lock = threading.Lock()

    @cached_property
    def _cache(self):
        key = (self._class, tuple(self._servers), repr(sorted(self._options.items())))
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = self._class(self._servers, **self._options)
        return client
