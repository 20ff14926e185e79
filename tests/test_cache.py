"""The shared cache (Redis when scaled out) as websocket connections use it."""

import pytest
from django.conf import settings
from django.core.cache import cache

from tests.ws import people, sockets  # noqa: F401  (sockets is a fixture)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not settings.REDIS_URL, reason="the embedded configuration has no Redis cache"),
]


def _redis_clients() -> int:
    return cache._cache.get_client(write=True).info("clients")["connected_clients"]


async def test_open_websockets_share_the_process_redis_connections(sockets):
    """Each socket is its own asyncio context, where Django makes a cache object of its own; with a
    pool per object a process held a Redis connection per open socket (and Redis ran out of them)."""
    before = _redis_clients()
    users = await people(40)
    opened = [await sockets(token) for _, token in users]
    for client in opened:  # each socket has counted itself online in the cache, and sends a message
        await client.send(type="typing", conversation=0)
        await client.receive_type("error")

    # A few for the database threads and the channel layer; not one per socket.
    assert _redis_clients() - before < 15


@pytest.mark.django_db
def test_a_registration_rate_window_counts_in_redis_and_expires_with_the_window(settings):
    """Each counter is one Redis key per window that goes away after it (a key that never expired
    would grow Redis by one key per address and window forever); a script Redis has forgotten (a
    restart, SCRIPT FLUSH) is loaded again."""
    from broker.errors import RateLimited
    from broker.ratelimit import _subject, check_register_allowed

    settings.MESSENGER = {**settings.MESSENGER, "REGISTER_RATE_PER_IP": 3, "REGISTER_WINDOW": 30}
    client = cache._cache.get_client(write=True)
    client.script_flush()
    for _ in range(3):
        check_register_allowed(phone_number=None, client_ip="203.0.113.7")
    with pytest.raises(RateLimited):
        check_register_allowed(phone_number=None, client_ip="203.0.113.7")

    keys = list(client.scan_iter(match=f"*ratelimit:register-ip:{_subject('203.0.113.7')}:*"))
    assert len(keys) == 1 and int(client.get(keys[0])) == 4
    assert 29 <= client.ttl(keys[0]) <= 31


@pytest.mark.django_db
async def test_presence_counts_in_one_redis_key_that_expires_and_goes_with_the_last_connection():
    """Counted from the event loop or from a thread alike (one process may do either), in one key
    that a crashed process's count cannot keep forever, and that the last connection out deletes."""
    from asgiref.sync import sync_to_async

    from broker.services import presence

    client = cache._cache.get_client(write=True)
    key = cache.make_and_validate_key("presence:connections:424242")
    assert await presence.connection_opened_on_loop(user_id=424242) is True
    assert await sync_to_async(presence.connection_opened)(user_id=424242) is False
    assert int(client.get(key)) == 2
    assert presence.CONNECTION_COUNT_TTL - 5 <= client.ttl(key) <= presence.CONNECTION_COUNT_TTL
    assert await sync_to_async(presence.is_online)(424242)

    assert await presence.connection_closed_on_loop(user_id=424242) == (False, None)
    went_offline, last_seen = await sync_to_async(presence.connection_closed)(user_id=424242)
    assert went_offline and last_seen is not None
    assert not client.exists(key)
    assert await presence.connection_opened_on_loop(user_id=424242) is True  # counts from zero again
