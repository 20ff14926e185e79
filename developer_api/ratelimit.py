"""Token buckets per API key and per app, kept in the Django cache so every server process shares
them (local memory embedded, Redis when scaled out).

Written here because no library fits: `limits` offers fixed, moving and sliding windows but no
token bucket, and keeps its counters in a storage of its own rather than Django's cache;
django-ratelimit counts fixed windows. A token bucket lets an app send a burst (a full bucket)
and then a steady rate, which is what a bot answering a crowd needs.

The bucket is kept as GCRA (the "generic cell rate algorithm", a token bucket written as one
number): the *theoretical arrival time* `tat`, the moment the bucket would be full again. Each
request pushes `tat` one emission interval (`period / capacity`) further; a request is refused when
that would put `tat` more than a whole bucket (`period`) ahead of now. One integer per bucket
means it can be moved with the cache's atomic `add` and `incr` (Redis SETNX and INCRBY), so no
read-modify-write race and no Lua script. The key expires when the bucket is full again.
"""

import math
import time

from django.core.cache import cache

from broker.errors import RateLimited

TOO_MANY = "Too many requests"


def _ttl(milliseconds: int) -> int:
    return max(1, math.ceil(milliseconds / 1000)) + 1


def _cache_key(bucket: str) -> str:
    return f"ratelimit:developer:{bucket}"


def _interval_ms(capacity: int, period: float) -> int:
    """The emission interval: how far one token moves the bucket's `tat`."""
    return max(1, int(period * 1000 / capacity))


def _give_back(key: str, interval: int) -> None:
    try:
        cache.decr(key, interval)
    except ValueError:  # the key expired meanwhile: the bucket is full anyway
        pass


def take_token(*, bucket: str, capacity: int, period: float, now: float | None = None,
               refusal: str = TOO_MANY) -> None:
    """Take one token from `bucket` (`capacity` tokens refilled evenly over `period` seconds),
    or raise RateLimited with the seconds until one is back, its message starting with `refusal`
    (which bucket it was, for whoever reads it)."""
    now_ms = int((time.time() if now is None else now) * 1000)
    interval = _interval_ms(capacity, period)
    burst = interval * capacity
    key = _cache_key(bucket)
    for _ in range(3):
        if cache.add(key, now_ms + interval, timeout=_ttl(interval)):
            return  # a full bucket: the first request in a while
        try:
            tat = cache.incr(key, interval)
            break
        except ValueError:  # expired between add and incr: start again
            continue
    else:
        return  # the cache keeps losing the key; let the request through rather than fail it
    if tat < now_ms + interval:
        # The bucket had refilled completely but its key had not yet expired (expiry has one-second
        # steps): count from now. Two requests doing this at once push `tat` a little too far,
        # which errs on the strict side by less than a second.
        tat = cache.incr(key, now_ms + interval - tat)
    if tat - now_ms > burst:
        _give_back(key, interval)  # a refused request takes no token
        raise RateLimited(
            f"{refusal}: at most {capacity} every {period:g} seconds.",
            retry_after=max(1, math.ceil((tat - now_ms - burst) / 1000)),
        )
    cache.touch(key, timeout=_ttl(tat - now_ms))


def take_tokens(*limits: tuple, now: float | None = None) -> None:
    """Take one token from each of the (bucket, capacity, period[, refusal]) `limits`, or from none:
    when one refuses, the tokens already taken for this request are given back before RateLimited
    is raised (else a key's refused requests would use up the app's bucket that its other keys share)."""
    taken = []
    try:
        for bucket, capacity, period, *refusal in limits:
            take_token(bucket=bucket, capacity=capacity, period=period, now=now,
                       refusal=refusal[0] if refusal else TOO_MANY)
            taken.append((bucket, capacity, period))
    except RateLimited:
        for bucket, capacity, period in taken:
            _give_back(_cache_key(bucket), _interval_ms(capacity, period))
        raise
