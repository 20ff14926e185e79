"""Ringing the doorbell: events go to the channel layer only after the write they announce commits.

The channel layer is at-most-once, so nothing here is the only copy of anything: a lost event is
made good by the client's catch-up on reconnect. A failing layer is logged, never raised into the
request that already committed.
"""

import asyncio
import contextlib
import hashlib
import logging
import os
import threading
import weakref
from collections.abc import Iterable

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from broker.eager import start_eagerly
from broker.events import to_frame

logger = logging.getLogger(__name__)

PUSH = "push"  # the handler name consumers implement for every published event


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def device_group(device_id: int) -> str:
    return f"device.{device_id}"


def session_group(session_key: str) -> str:
    """The sockets of one browser session; named by a digest, so no session key travels the layer."""
    return f"session.{hashlib.sha256(session_key.encode()).hexdigest()[:40]}"


def publish_on_commit(groups: Iterable[str], event: dict, *, skip_channel: str | None = None,
                      sessions_only: bool = False, skip_session: str | None = None) -> None:
    """Send `event` to every group once the current transaction commits (at once outside one).

    `skip_channel` names the connection that caused the event and has its own reply already.
    `sessions_only` (for `session.revoked` to a user's group): only the sockets of browser
    sessions take it, not those of devices, and not those of the session whose group is
    `skip_session` (see `session_group`).
    """
    groups = list(groups)
    after_commit(lambda: publish_now(groups, event, skip_channel=skip_channel,
                                     sessions_only=sessions_only, skip_session=skip_session))


def after_commit(func) -> None:
    """`transaction.on_commit(func)`; at once inside `announcing_committed`, where the write is
    committed already."""
    if getattr(_calling_loop, "committed", False):
        func()
    else:
        transaction.on_commit(func)


def _payload(event: dict, skip_channel: str | None, sessions_only: bool = False,
             skip_session: str | None = None) -> dict:
    """What travels the channel layer: the event already as its websocket frame, serialized once for
    every connection it reaches (49 for a message in a group of 50), with its type beside it."""
    payload = {"type": PUSH, "event_type": event["type"], "frame": to_frame(event), "skip_channel": skip_channel}
    if sessions_only:
        payload["sessions_only"] = True
        payload["skip_session"] = skip_session
    return payload


def publish_now(groups: list[str], event: dict, *, skip_channel: str | None = None,
                sessions_only: bool = False, skip_session: str | None = None) -> None:
    if not groups:
        return
    payload = _payload(event, skip_channel, sessions_only, skip_session)
    loop = _server_event_loop()
    if loop is not None:
        # In a server's worker thread (database_sync_to_async), or on the loop's own thread: hand the
        # sends to the event loop and return at once, instead of holding the database thread until
        # every group_send is done.
        if getattr(_calling_loop, "loop", None) is loop:
            collected = getattr(_calling_loop, "collected", None)
            if collected is not None:  # sent as the call returns (`called_from_loop`)
                collected.append((groups, payload))
            else:
                _send_in_order(loop, groups, payload)  # at once, so that `local_deliveries_first` sees it
        else:
            loop.call_soon_threadsafe(_send_in_order, loop, groups, payload)
        return
    try:
        async_to_sync(_group_send_all)(groups, payload)
    except Exception:  # the doorbell failing must not undo or fail a committed write
        logger.exception("publishing %s to %d groups failed", event.get("type"), len(groups))


# The event loop a database call runs on when it runs on the loop's own thread (frontdesk/db.py:
# SQLite's short calls), with the loop hidden from Django's async-safety check for the call.
_calling_loop = threading.local()


@contextlib.contextmanager
def called_from_loop(loop: asyncio.AbstractEventLoop, *, collect: bool = False):
    """Publishing inside this block hands events to `loop`, the loop this thread is running.

    `collect`: keep them in the list this yields instead, for `send_collected` once the loop can
    run them (the block hides it: frontdesk/db.py)."""
    _calling_loop.loop = loop
    _calling_loop.collected = [] if collect else None
    try:
        yield _calling_loop.collected
    finally:
        _calling_loop.loop = _calling_loop.collected = None


def send_collected(loop: asyncio.AbstractEventLoop, collected: list | None) -> None:
    """Publish what `called_from_loop` collected, in order, each started in this call (broker/eager.py)
    rather than in a task a turn of the loop later. With the in-process layer that writes the
    event to its recipients' sockets here and now, before the caller answers its own client."""
    for groups, payload in collected or ():
        _send_in_order(loop, groups, payload, eagerly=True)


@contextlib.contextmanager
def announcing_committed(loop: asyncio.AbstractEventLoop):
    """For a write the event loop has just committed itself (storage/async_sql.py), with no
    Django transaction around it: what is published or signalled `after_commit` in this block goes
    at once, events handed to `loop` as from a database call on the loop."""
    with called_from_loop(loop):
        _calling_loop.committed = True
        try:
            yield
        finally:
            _calling_loop.committed = False


def _server_event_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop that called into this worker thread, if any (as asgiref's async_to_sync finds it)."""
    loop = getattr(_calling_loop, "loop", None)
    if loop is not None:
        return loop
    local = SyncToAsync.threadlocal
    loop = getattr(local, "main_event_loop", None)
    if loop is None or getattr(local, "main_event_loop_pid", None) != os.getpid() or loop.is_closed():
        return None
    return loop


# The newest publishing task per event loop: each task waits for the one before it, so events reach
# the channel layer in the order their transactions committed, as they did when publishing blocked.
_last_send: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task]" = weakref.WeakKeyDictionary()


def _send_in_order(loop: asyncio.AbstractEventLoop, groups: list[str], payload: dict, *, eagerly: bool = False) -> None:
    sending = _send_after(_last_send.get(loop), groups, payload)
    if eagerly:  # on the running loop: up to its first wait in this call
        rest = start_eagerly(sending)
        if rest is None:  # done already, and so was everything published before it
            _last_send.pop(loop, None)
            return
        sending = rest
    _last_send[loop] = loop.create_task(sending)


async def _send_after(previous: asyncio.Task | None, groups: list[str], payload: dict) -> None:
    if previous is not None and not previous.done():
        await asyncio.wait([previous])
    try:
        await _group_send_all(groups, payload)
    except Exception:
        logger.exception("publishing %s to %d groups failed", payload["event_type"], len(groups))


async def _group_send_all(groups: list[str], payload: dict) -> None:
    layer = get_channel_layer()
    send_many = getattr(layer, "group_send_many", None)  # our layers: one round trip for all groups
    if send_many is not None:
        await send_many(groups, payload, except_channel=payload.get("skip_channel"))
    else:
        await asyncio.gather(*(layer.group_send(group, payload) for group in groups))


async def local_deliveries_first() -> None:
    """Wait until what this event loop has published so far is handed to the in-process layer.

    A consumer awaits it before answering its own client: the members' copies of a message are
    written before the sender's `message.sent`, as a relay forwards before it acknowledges (the
    layer's consumers write on the spot when handed an event). With a layer that leaves the
    process (Redis) the wait would be a round trip for nothing: the recipients are elsewhere.
    """
    if not getattr(get_channel_layer(), "delivers_in_process", False):
        return
    task = _last_send.get(asyncio.get_running_loop())
    if task is not None and not task.done():
        await asyncio.wait([task])


async def apublish(groups: Iterable[str], event: dict, *, skip_channel: str | None = None) -> None:
    """The async form, for ephemeral events (typing, presence) that no transaction carries."""
    try:
        await _group_send_all(list(groups), _payload(event, skip_channel))
    except Exception:
        logger.exception("publishing %s failed", event.get("type"))
