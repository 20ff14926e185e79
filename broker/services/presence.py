"""Presence (online, last seen) and typing: ephemeral, carried by the channel layer only.

Online is "at least one open connection", counted in the shared cache so that connections held by
different server processes add up. Only `last_seen` is stored.
"""

import logging

import psycopg
from django.core.cache import cache
from django.utils import timezone
from redis.commands.core import AsyncScript, Script

from broker import cache_redis, events
from broker.errors import BrokerError
from broker.publish import publish_on_commit, user_group
from broker.services import accounts
from broker.services.people import not_a_member, parse_id
from storage import async_sql, selectors, sql
from storage.models import User

logger = logging.getLogger(__name__)

# A crashed process cannot decrement its count; the key expiring bounds how long a ghost lingers.
CONNECTION_COUNT_TTL = 6 * 3600


def _key(user_id: int) -> str:
    return f"presence:connections:{user_id}"


def is_online(user_id: int) -> bool:
    return (cache.get(_key(user_id)) or 0) > 0


def online_user_ids(user_ids: list[int]) -> set[int]:
    counts = cache.get_many([_key(uid) for uid in user_ids])
    return {uid for uid in user_ids if (counts.get(_key(uid)) or 0) > 0}


# Count a connection in and keep the count CONNECTION_COUNT_TTL longer; count one out, the last one
# deleting the key. Each is one atomic command on Redis, in one round trip: through the cache API
# they were four and three, and a count-out's DECR and DEL sent apart could delete a connection
# that another process counted in between, showing a connected user offline.
# (Bytes: a script given as text would need a client to encode it with.)
_COUNT_IN = b"local n = redis.call('INCR', KEYS[1]) redis.call('EXPIRE', KEYS[1], ARGV[1]) return n"
_COUNT_OUT = b"local n = redis.call('DECR', KEYS[1]) if n <= 0 then redis.call('DEL', KEYS[1]) end return n"
_count_in, _count_out = Script(None, _COUNT_IN), Script(None, _COUNT_OUT)
_acount_in, _acount_out = AsyncScript(None, _COUNT_IN), AsyncScript(None, _COUNT_OUT)


def connection_opened(*, user_id: int) -> bool:
    """Count a new connection; True if the user just came online."""
    key = _key(user_id)
    client = cache_redis.client(key)
    if client is not None:
        return _count_in(keys=[cache_redis.cache_key(key)], args=[CONNECTION_COUNT_TTL], client=client) == 1
    cache.add(key, 0, timeout=CONNECTION_COUNT_TTL)
    try:
        count = cache.incr(key)
    except ValueError:
        cache.set(key, 1, timeout=CONNECTION_COUNT_TTL)
        count = 1
    cache.touch(key, CONNECTION_COUNT_TTL)
    return count == 1


def connection_closed(*, user_id: int) -> tuple[bool, object]:
    """Uncount a connection; (True, last_seen) if that was the user's last one."""
    key = _key(user_id)
    client = cache_redis.client(key)
    if client is not None:
        count = _count_out(keys=[cache_redis.cache_key(key)], client=client)
    else:
        try:
            count = cache.decr(key)
        except ValueError:
            count = 0
        if count <= 0:
            cache.delete(key)
    if count > 0:
        return False, None
    now = timezone.now()
    User.objects.filter(pk=user_id).update(last_seen=now)
    return True, now


async def connection_opened_on_loop(*, user_id: int) -> bool | None:
    """`connection_opened` from the event loop, where the count is in Redis; None elsewhere (the
    embedded cache): then call `connection_opened`."""
    client = cache_redis.loop_client()
    if client is None:
        return None
    return await _acount_in(keys=[cache_redis.cache_key(_key(user_id))], args=[CONNECTION_COUNT_TTL], client=client) == 1


async def connection_closed_on_loop(*, user_id: int) -> tuple[bool, object] | None:
    """`connection_closed` from the event loop, where the count is in Redis and the database
    answers there (storage/async_sql.py); None elsewhere: then call `connection_closed`."""
    client = cache_redis.loop_client()
    if client is None or not async_sql.enabled():
        return None
    count = await _acount_out(keys=[cache_redis.cache_key(_key(user_id))], client=client)
    if count > 0:
        return False, None
    now = timezone.now()
    try:
        await async_sql.rows(f"UPDATE {sql.table(User)} SET last_seen = %s WHERE id = %s RETURNING id", [now, user_id])
    except psycopg.Error:  # the user is offline all the same (the count is out); only the time is lost
        logger.warning("storing a user's last seen failed", exc_info=True)
    return True, now


def presence_audience(*, user_id: int) -> list[str]:
    """The groups that hear a user's presence: people they share a direct chat with, less blocks."""
    return [user_group(uid) for uid in selectors.presence_audience_ids(user_id=user_id)]


async def presence_audience_on_loop(*, user_id: int) -> list[str] | None:
    """`presence_audience` from the event loop on PostgreSQL; None where it cannot be asked there
    (or failed): then call `presence_audience`."""
    rows = await async_sql.rows_or_none(*selectors.presence_audience_query(user_id=user_id),
                                        asking="a presence audience")
    return None if rows is None else [user_group(uid) for (uid,) in rows]


def presence_seen_by(*, viewer_id: int, user_ids: list[int]) -> dict[int, bool]:
    """Whether each of `user_ids` is online, for those whose presence `viewer_id` may see (themselves
    and the audience of their own presence: a shared direct chat, no block either way; the same
    people the websocket's `presence` events go to). The others are left out: their presence is
    not the viewer's to know, online or last seen."""
    visible = set(selectors.presence_audience_ids(user_id=viewer_id)) | {viewer_id}
    shown = [uid for uid in user_ids if uid in visible]
    online = online_user_ids(shown) if shown else set()
    return {uid: uid in online for uid in shown}


def block_changed(*, blocker_id: int, other_id: int) -> None:
    """After a block between two people is made or lifted (on commit): each hears of the other's
    presence as it now is to them, shown or hidden. Hidden is "offline, never seen", as
    `GET conversations` then shows them: else a page would go on showing the last it heard, online
    say, for as long as it stays open."""
    online = presence_seen_by(viewer_id=blocker_id, user_ids=[other_id, blocker_id])
    shown = other_id in online  # mutual (a shared direct chat, no block either way): both or neither
    for viewer_id, user_id in ((blocker_id, other_id), (other_id, blocker_id)):
        last_seen = selectors.last_seen(user_id=user_id) if shown else None
        publish_on_commit([user_group(viewer_id)],
                          presence_event(user_id=user_id, online=shown and online[user_id], last_seen=last_seen))


def presence_event(*, user_id: int, online: bool, last_seen=None) -> dict:
    return events.presence(user_id=user_id, online=online, last_seen=last_seen)


def typing_audience(*, user: User, conversation_id: object, device_id: int | None = None) -> tuple[int, list[str]]:
    """(conversation id, groups of the members who may see the user typing) for a typing notice;
    refused for outsiders (people.not_a_member). Given the `device_id` it comes from, the device
    must still be logged in (accounts.check_device, asked in the same query)."""
    conversation_id = parse_id(conversation_id, field="conversation")
    audience = selectors.typing_audience(user_id=user.pk, conversation_id=conversation_id, device_id=device_id)
    accounts.check_device(device_id=device_id, context=audience)
    if audience is None:
        raise not_a_member(user_id=user.pk, conversation_id=conversation_id)
    return conversation_id, [user_group(uid) for uid in audience.listener_ids]


async def typing_audience_on_loop(*, user: User, conversation_id: object, device_id: int | None = None,
                                  credential_checked: bool = False) -> tuple[int, list[str]] | None:
    """`typing_audience` from the event loop on PostgreSQL (storage/async_sql.py): its one
    statement, no hop to a database thread. None when it is not the common case (bad input, an
    outsider, a revoked device, an error): `typing_audience` then answers it. Without a device,
    the caller must have checked the credential itself (`credential_checked`, as for sends)."""
    if (device_id is None and not credential_checked) or not async_sql.enabled():
        return None
    try:
        conversation_id = parse_id(conversation_id, field="conversation")
    except BrokerError:
        return None
    rows = await async_sql.rows_or_none(*selectors.typing_audience_query(
        user_id=user.pk, conversation_id=conversation_id, device_id=device_id), asking="a typing notice")
    if rows is None:
        return None
    audience = selectors.typing_audience_from_rows(rows, user_id=user.pk)
    if audience is None or audience.device_active is False:
        return None
    return conversation_id, [user_group(uid) for uid in audience.listener_ids]
