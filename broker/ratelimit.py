"""Per-user rate limits, counted in the Django cache so every server process shares them
(local memory in the embedded setup, Redis when scaled out).

Written here rather than taken from django-ratelimit because that library limits HTTP requests
(it needs a request object), while sends also arrive as websocket frames.
"""

import time

from django.conf import settings
from django.core.cache import cache

from broker.errors import RateLimited


def check_send_rate(*, user_id: int) -> None:
    """Allow SEND_RATE messages per SEND_RATE_WINDOW seconds per user (a fixed window counter)."""
    limit = settings.MESSENGER["SEND_RATE"]
    window = settings.MESSENGER["SEND_RATE_WINDOW"]
    now = time.time()
    window_index = int(now // window)
    key = f"ratelimit:send:{user_id}:{window_index}"
    cache.add(key, 0, timeout=window + 1)
    try:
        count = cache.incr(key)
    except ValueError:  # the key expired between add and incr
        cache.set(key, 1, timeout=window + 1)
        count = 1
    if count > limit:
        retry_after = max(1, int((window_index + 1) * window - now + 0.999))
        raise RateLimited(f"Too many messages: at most {limit} every {window} seconds.", retry_after=retry_after)
