"""Rate limits: sends per user, counted from the stored messages; login and registration attempts
per phone number and per client address, and lookups of phone numbers per user (those nobody uses,
and all), counted in the Django cache so every server process shares them (local memory in the
embedded setup, Redis when scaled out). Plus `FrameBudget`, the
per-connection budget of websocket frames, which lives in the connection itself.

Written here rather than taken from django-ratelimit because that library limits HTTP requests
(it needs a request object), while sends also arrive as websocket frames; and the send limit is a
query over the messages table, which on PostgreSQL runs inside the statement that stores the
message (broker/services/send.py), something no cache-based library can do.
"""

import hashlib
import ipaddress
import math
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from redis.commands.core import Script

from broker import cache_redis
from broker.errors import RateLimited


def send_window_start(now: datetime) -> datetime:
    """Where the send limit's window begins for a message written at `now`."""
    return now - timedelta(seconds=settings.MESSENGER["SEND_RATE_WINDOW"])


def send_rate_refusal(*, reached_at: datetime, now: datetime) -> RateLimited:
    """The refusal of a send while the limit is reached; the limit frees a send when the message
    that reached it (selectors.send_limit_query) leaves the window."""
    limit, window = settings.MESSENGER["SEND_RATE"], settings.MESSENGER["SEND_RATE_WINDOW"]
    retry_after = max(1, math.ceil((reached_at - now).total_seconds() + window))
    return RateLimited(f"Too many messages: at most {limit} every {window} seconds.", retry_after=retry_after)


# --- login and registration ---------------------------------------------------------------------
def _window(key: str, window: int) -> tuple[str, float, int]:
    now = time.time()
    index = int(now // window)
    return f"{key}:{index}", now, max(1, int((index + 1) * window - now + 0.999))


def _count(key: str) -> int:
    return cache.get(key) or 0


# INCR, and the window's lifetime set by the count that starts it, as one atomic command: a
# process that died between the two could not leave a counter that never expires.
# (Bytes: a script given as text would need a client to encode it with.)
_INCR_WITH_TTL = Script(None, b"local count = redis.call('INCR', KEYS[1]) "
                              b"if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end return count")


def _incr(key: str, window: int) -> int:
    """Count one more in a counter that lives `window + 1` seconds; the new count.

    On Redis that is one command, the script above (EVALSHA), in one round trip: the cache API
    takes two, and a pipeline of SET NX EX and INCR took ~210 us of the process's time a call in
    redis-py against the script's ~150 (docs/performance.md, change 28, when sends were counted
    here too)."""
    client = cache_redis.client(key)
    if client is not None:
        return _INCR_WITH_TTL(keys=[cache_redis.cache_key(key)], args=[window + 1], client=client)
    try:  # the window's counter usually exists: one cache call
        return cache.incr(key)
    except ValueError:  # the window's first count (or the counter expired just now)
        if cache.add(key, 1, timeout=window + 1):
            return 1
        return cache.incr(key)  # another request started it meanwhile


def _subject(value: str) -> str:
    # Phone numbers and addresses are personal data: only a digest of them goes into cache keys.
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _address_subject(client_ip: str) -> str:
    """What a per-address limit counts: an IPv4 address, or an IPv6 address's /64. A host (a home
    line, a cloud server) is given a whole /64 and may use any address in it, so counting each
    IPv6 address alone would let it try without limit. An IPv4-mapped IPv6 address is its IPv4
    address (a dual-stack socket reports IPv4 clients so)."""
    try:
        address = ipaddress.ip_address(client_ip.strip().split("%")[0])
    except ValueError:
        return _subject(client_ip)
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.version == 6:
        return _subject(str(ipaddress.IPv6Network((address, 64), strict=False)))
    return _subject(str(address))


def _refuse(what: str, retry_after: int):
    raise RateLimited(f"Too many {what}; try again in {retry_after} seconds.", retry_after=retry_after)


def check_login_allowed(*, phone_number: str | None, client_ip: str | None) -> None:
    """Before checking a password: refuse when this address has made too many attempts, or this
    phone number has had too many wrong passwords, in the current window (even with the right one)."""
    limits = settings.MESSENGER
    window = limits["LOGIN_WINDOW"]
    if client_ip:
        key, _, retry_after = _window(f"ratelimit:login-ip:{_address_subject(client_ip)}", window)
        if _incr(key, window) > limits["LOGIN_RATE_PER_IP"]:
            _refuse("login attempts from your address", retry_after)
    if phone_number:
        key, _, retry_after = _window(f"ratelimit:login-fail:{_subject(phone_number)}", window)
        if _count(key) >= limits["LOGIN_FAILURES_PER_PHONE"]:
            _refuse("wrong passwords for this phone number", retry_after)


def login_failed(*, phone_number: str) -> None:
    """Count a wrong password against the phone number."""
    window = settings.MESSENGER["LOGIN_WINDOW"]
    key, _, _ = _window(f"ratelimit:login-fail:{_subject(phone_number)}", window)
    _incr(key, window)


def check_register_allowed(*, phone_number: str | None, client_ip: str | None) -> None:
    """Registration attempts per address and per phone number (which also slows down anyone
    probing which numbers are registered)."""
    limits = settings.MESSENGER
    window = limits["REGISTER_WINDOW"]
    if client_ip:
        key, _, retry_after = _window(f"ratelimit:register-ip:{_address_subject(client_ip)}", window)
        if _incr(key, window) > limits["REGISTER_RATE_PER_IP"]:
            _refuse("registrations from your address", retry_after)
    if phone_number:
        key, _, retry_after = _window(f"ratelimit:register-phone:{_subject(phone_number)}", window)
        if _incr(key, window) > limits["REGISTER_RATE_PER_PHONE"]:
            _refuse("registration attempts for this phone number", retry_after)


# --- looking people up by phone number ---------------------------------------------------------
# Two limits. Misses, numbers nobody uses, have a tight one: probing which numbers are registered
# is mostly misses, as most numbers are nobody's, while a person adding the people they know mostly
# hits and should not run out. Every lookup has a loose one, for whoever holds a list of numbers
# people use and would learn whose each is. Both are checked before the lookup, so once either is
# reached every number is refused (hits included) until the window ends, and the answers say
# nothing more.
def check_lookup_allowed(*, user_id: int) -> None:
    """Before looking someone up by phone number for this user; counts the lookup."""
    limits = settings.MESSENGER
    window = limits["LOOKUP_WINDOW"]
    key, _, retry_after = _window(f"ratelimit:lookup-miss:{user_id}", window)
    if _count(key) >= limits["LOOKUP_MISSES_PER_USER"]:
        _refuse("phone numbers nobody uses looked up", retry_after)
    key, _, retry_after = _window(f"ratelimit:lookup:{user_id}", window)
    if _incr(key, window) > limits["LOOKUPS_PER_USER"]:
        _refuse("phone numbers looked up", retry_after)


def lookup_missed(*, user_id: int) -> None:
    """Count a phone number this user looked up that nobody uses."""
    window = settings.MESSENGER["LOOKUP_WINDOW"]
    key, _, _ = _window(f"ratelimit:lookup-miss:{user_id}", window)
    _incr(key, window)


# --- websocket frames -----------------------------------------------------------------------------
class FrameBudget:
    """A token bucket of frames for one websocket connection: `burst` at once, refilled at `rate`
    per second. `spend()` says whether a frame may be handled; `overdrawn` counts frames refused
    since the budget last allowed one (the consumer answers only some of them).

    `flooding` says the client is abusing the connection: its refused frames, less what the refill
    forgives (`rate` a second), came to more than a whole burst. Counting only refusals in a row
    would never catch a flood on a real server: handling frames takes time, a token refills every
    1/rate seconds in the middle of any flood, and each one would start the count again.
    """

    def __init__(self, *, rate: float, burst: int, clock=time.monotonic):
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)
        self.updated = clock()
        self.overdrawn = 0
        self.strikes = 0.0

    def spend(self) -> bool:
        now = self.clock()
        refilled = (now - self.updated) * self.rate
        self.tokens = min(self.burst, self.tokens + refilled)
        self.strikes = max(0.0, self.strikes - refilled)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            self.overdrawn = 0
            return True
        self.overdrawn += 1
        self.strikes += 1
        return False

    @property
    def flooding(self) -> bool:
        return self.strikes > self.burst

    def retry_after(self) -> int:
        return max(1, int((1 - self.tokens) / self.rate + 0.999)) if self.rate > 0 else 60
