"""The websocket endpoint (/ws/v1/): JSON frames in, broker calls, events out. See docs/protocol.md."""

import asyncio
import functools
import json
import logging
import random
from collections import deque

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings

from broker import events
from broker.eager import start_eagerly
from broker.errors import BrokerError, CredentialRevoked
from broker.publish import PUSH, apublish, device_group, local_deliveries_first, session_group, user_group
from broker.ratelimit import FrameBudget
from broker.services import accounts, catchup, presence, receipts, send, sessions
from frontdesk.db import BUSY_MESSAGE, BUSY_RETRY_AFTER, database_sync_to_async, no_connection_free

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4001
# A client that goes on flooding frames after being told to stop. (Autobahn, under Daphne, lets an
# application close only with 1000 or 3000-4999, so not the standard 1008.)
CLOSE_POLICY_VIOLATION = 4008
# A client that reads its socket too slowly: more events waited for it than MAX_FRAMES_WAITING.
CLOSE_TOO_SLOW = 4009
MAX_REF_LENGTH = 128


def _frame_ref(frame: dict):
    """What the client can match an error to: its own `ref`, else the message's client_id."""
    ref = frame.get("ref", frame.get("client_id") if frame.get("type") == "message.send" else None)
    if isinstance(ref, (str, int)) and not isinstance(ref, bool) and len(str(ref)) <= MAX_REF_LENGTH:
        return ref
    return None


class OutsizedNumber:
    """What a JSON integer of more digits than any field takes becomes (`json.loads` would refuse
    one of over 4,300 digits outright, as if the frame were not JSON): no field's check accepts it,
    so the frame is refused as `invalid`, naming the field."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<a number too long>"


_OUTSIZED_NUMBER = OutsizedNumber()
MAX_INTEGER_DIGITS = 20  # every integer a frame carries (ids, seqs) fits in 64 bits: 19 digits and a sign


def _parse_int(digits: str):
    return int(digits) if len(digits) <= MAX_INTEGER_DIGITS else _OUTSIZED_NUMBER


# Made once: json.loads(..., parse_int=...) would make a decoder per frame (3-4 us more each).
_FRAME_DECODER = json.JSONDecoder(parse_int=_parse_int)


def recheck_waits(interval: float):
    """The waits between a socket's periodic credential checks: the first a random part of
    `interval`, then `interval` each. Sockets that connected together (every client of a server
    that restarted reconnects within seconds) would otherwise check together, every interval, a
    burst of as many database queries and channel-layer joins as there are sockets; each socket
    still checks at least once per interval."""
    yield interval * random.random()
    while True:
        yield interval


_writing: set[asyncio.Task] = set()  # the loop keeps only weak references to tasks (writes that had to wait)


def _write_in_background(coroutine) -> None:
    task = asyncio.get_running_loop().create_task(coroutine)
    _writing.add(task)
    task.add_done_callback(_written)


def _written(task: asyncio.Task) -> None:
    _writing.discard(task)
    if not task.cancelled() and task.exception() is not None:  # e.g. the socket closed meanwhile
        logger.debug("writing an event to a websocket failed: %r", task.exception())


# Services that take the connection's device and check it within the conversation query they make
# anyway (accounts.check_device): the frames that call them need no query of their own for it.
_CHECK_DEVICE_IN_CALL = frozenset({send.send_message, receipts.mark_delivered, receipts.mark_read,
                                   presence.typing_audience})


class ChatConsumer(AsyncWebsocketConsumer):
    revoked = False
    recheck_task = None
    layer_task = None  # handles what the channel layer queued for this socket, once it has caught up
    closing = False  # the server has closed the socket: nothing more may be written to it
    frames_waiting: deque | None = None  # frames queued behind a write the socket made wait for

    async def __call__(self, scope, receive, send):
        """Channels' own (`AsyncConsumer.__call__`), but with the socket's frames read and handled in
        this task, and the channel layer's queued messages in a task of their own (`layer_task`).

        Channels waits for both sources at once (`await_many_dispatch`: a task per read, and
        `asyncio.wait` over both after every message), so a frame the server has queued reached its
        handler three turns of the event loop later; read here, the next turn. In the benchmark
        that hop was a twentieth of an embedded message's time in the server (docs/performance.md,
        change 35). One socket's frames are still handled one at a time, in order. Queued layer
        messages are rare here (the layer writes events to the socket on the spot: `_push_now`):
        a revocation, and events that came while the socket caught up, which `connect` releases
        only after the backlog, as before.
        """
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = await self.channel_layer.new_channel()
        self.channel_receive = functools.partial(self.channel_layer.receive, self.channel_name)
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass
        finally:
            if self.layer_task is not None:
                self.layer_task.cancel()

    async def _dispatch_layer_messages(self):
        while True:
            message = await self.channel_receive()
            try:
                await self.dispatch(message)
            except Exception:  # e.g. the socket closed meanwhile: the socket's own task carries on
                logger.exception("handling a channel layer message for a websocket failed")

    async def dispatch(self, message):
        """Channels' own dispatch minus its `aclose_old_connections()` before every handler.

        That call is a trip through the one database thread for every event, including each `push`
        that only writes to this socket, so under fan-out deliveries queue behind other connections'
        database work (channels >= 4.2). The handlers here reach the database only through
        `database_sync_to_async`, which closes stale connections itself before and after each call.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self):
        user = self.scope.get("user")
        await self.accept()
        if user is None or not user.is_authenticated:
            await self._send_event(events.error(
                code="authentication_failed",
                message=self.scope.get("auth_error") or "Log in first.",
            ))
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user = user
        limits = settings.MESSENGER
        self.frame_budget = FrameBudget(rate=limits["FRAME_RATE"], burst=limits["FRAME_BURST"])
        # What this socket was authenticated by, re-checked on every frame and periodically: the
        # `session.revoked` event travels the at-most-once channel layer and may be lost.
        self.device_id = self.scope.get("device_id")
        session = self.scope.get("session") if not self.device_id else None
        self.session_key = session.session_key if session is not None else None
        self.groups_joined = [user_group(user.pk)]
        if self.device_id:
            self.groups_joined.append(device_group(self.device_id))
        elif self.session_key:
            self.groups_joined.append(session_group(self.session_key))
        # Join before reading the backlog: a message stored in between arrives twice at worst
        # (clients drop duplicates by conversation and seq), never zero times.
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        came_online = await presence.connection_opened_on_loop(user_id=user.pk)
        if came_online is None:
            came_online = await database_sync_to_async(presence.connection_opened)(user_id=user.pk)
        if came_online:
            await self._announce_presence(online=True, last_seen=None)
        await self._send_backlog()
        # From now on the layer may hand this socket's events over to be written on the spot (not
        # before: live events that came during catch-up are queued, and go out after it).
        attach = getattr(self.channel_layer, "attach", None)
        if attach is not None:
            attach(self.channel_name, self._push_now)
        self.layer_task = asyncio.create_task(self._dispatch_layer_messages())
        if limits["AUTH_RECHECK_SECONDS"] > 0:
            self.recheck_task = asyncio.create_task(self._recheck_periodically(limits["AUTH_RECHECK_SECONDS"]))

    async def disconnect(self, code):
        if self.recheck_task is not None:
            self.recheck_task.cancel()
        if self.layer_task is not None:
            self.layer_task.cancel()
        detach = getattr(self.channel_layer, "detach", None)
        if detach is not None:
            detach(self.channel_name)
        user = getattr(self, "user", None)
        if user is None:
            return
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)
        closed = await presence.connection_closed_on_loop(user_id=user.pk)
        went_offline, last_seen = closed if closed is not None else \
            await database_sync_to_async(presence.connection_closed)(user_id=user.pk)
        if went_offline:
            await self._announce_presence(online=False, last_seen=last_seen)

    async def _announce_presence(self, *, online: bool, last_seen):
        audience = await presence.presence_audience_on_loop(user_id=self.user.pk)
        if audience is None:
            audience = await database_sync_to_async(presence.presence_audience)(user_id=self.user.pk)
        await apublish(audience, presence.presence_event(user_id=self.user.pk, online=online, last_seen=last_seen))

    async def _send_backlog(self):
        """Catch up, in a thread (it may take long), but only when there is anything to catch up
        on: a short question, answered on the event loop (PostgreSQL's own connection, or SQLite
        as the loop's other short calls: frontdesk/db.py)."""
        missed = await catchup.anything_missed_on_loop(user_id=self.user.pk)
        if missed is None:
            missed = await database_sync_to_async(catchup.anything_missed)(user_id=self.user.pk)
        if not missed:
            return
        for event in await database_sync_to_async(catchup.backlog, may_take_long=True)(user=self.user):
            await self._send_event(event)

    # --- is the credential still valid? -----------------------------------------------------------
    def _credential_valid(self) -> bool:
        """Sync (in the worker thread): the device is still logged in, or the session still is."""
        if self.device_id:
            return accounts.device_is_valid(self.device_id)
        return sessions.session_user_id(self.session_key) == self.user.pk

    async def _credential_still_valid(self) -> bool:
        """The periodic check: on the event loop where it can be asked there (PostgreSQL), else in a
        thread. Every socket asks once a minute: ten thousand sockets on a process, 170 a second."""
        if self.device_id:
            valid = await accounts.device_is_valid_on_loop(self.device_id)
        else:
            valid = await self._session_logged_in_on_loop()
        if valid is None:
            valid = await database_sync_to_async(self._credential_valid)()
        return valid

    async def _session_logged_in_on_loop(self) -> bool | None:
        """A browser page's session, asked on the event loop (broker/services/sessions.py); None
        where it cannot be asked there."""
        return await sessions.session_logs_in_on_loop(self.session_key, self.user.pk) if self.session_key else None

    def _checked_call(self, function, kwargs):
        if self.device_id and function in _CHECK_DEVICE_IN_CALL:
            try:
                return function(device_id=self.device_id, **kwargs)
            except CredentialRevoked:
                raise
            except Exception:
                # Refused before it could check (bad input, say): a revoked socket is still closed
                # rather than answered.
                if not self._credential_valid():
                    raise CredentialRevoked() from None
                raise
        if not self._credential_valid():
            raise CredentialRevoked()
        return function(**kwargs)

    async def call(self, function, **kwargs):
        """Run a broker service in the worker thread, after checking the credential in the same hop
        (for sends, receipts and typing, within the service's own conversation query)."""
        return await database_sync_to_async(self._checked_call)(function, kwargs)

    async def call_on_loop(self, function, **kwargs):
        """Run a service's event-loop path (PostgreSQL: `send.send_text_on_loop`,
        `receipts.advance_on_loop`, `presence.typing_audience_on_loop`) with this socket's
        credential: a device's is checked within the service's statement, a browser session's by a
        statement of its own just before. None when that path does not answer the frame: then
        `call` does."""
        if self.device_id:
            return await function(device_id=self.device_id, **kwargs)
        logged_in = await self._session_logged_in_on_loop()
        if logged_in is None:
            return None
        if not logged_in:
            raise CredentialRevoked()
        return await function(credential_checked=True, **kwargs)

    async def _end_revoked(self):
        if not self.revoked:
            self.revoked = True
            await self._send_event(events.session_revoked())
            await self.close(code=CLOSE_UNAUTHENTICATED)

    async def _recheck_periodically(self, interval: float):
        """Every `interval`: close if the credential was revoked, and join the groups again.

        Joining is idempotent; it matters after the channel layer lost its state (a Redis restart
        forgets every group), so live events resume without the client reconnecting. What was
        published meanwhile is recovered as any lost event is: catch-up and gap filling.
        """
        for wait in recheck_waits(interval):
            if self.revoked:
                return
            await asyncio.sleep(wait)
            try:
                if not await self._credential_still_valid():
                    await self._end_revoked()
                    return
                for group in self.groups_joined:
                    await self.channel_layer.group_add(group, self.channel_name)
            except asyncio.CancelledError:
                raise
            except Exception:  # the database or the layer is down for now: try again next time
                logger.warning("re-checking a websocket's credential or groups failed", exc_info=True)

    # --- client -> server ---------------------------------------------------------------------
    async def receive(self, text_data=None, bytes_data=None):
        if getattr(self, "user", None) is None or self.revoked:
            return
        if not self.frame_budget.spend():
            await self._over_budget()
            return
        if text_data is None:
            await self._send_event(events.error(code="bad_frame", message="Frames must be JSON text, not binary."))
            return
        if len(text_data.encode("utf-8", "surrogatepass")) > settings.MESSENGER["MAX_FRAME_BYTES"]:
            await self._send_event(events.error(
                code="frame_too_large", message=f"Frames are limited to {settings.MESSENGER['MAX_FRAME_BYTES']} bytes."
            ))
            return
        try:
            frame = _FRAME_DECODER.decode(text_data)
        except (ValueError, RecursionError):
            await self._send_event(events.error(code="bad_json", message="The frame is not valid JSON."))
            return
        if not isinstance(frame, dict):
            await self._send_event(events.error(code="bad_frame", message="A frame must be a JSON object with a type."))
            return
        frame_type = frame.get("type")
        handler = self.HANDLERS.get(frame_type) if isinstance(frame_type, str) else None
        if handler is None:
            await self._send_event(events.error(
                code="unknown_type", message=f"Unknown frame type {frame_type!r}; expected one of {sorted(self.HANDLERS)}.",
                frame=frame_type if isinstance(frame_type, str) else None, ref=_frame_ref(frame), field="type",
            ))
            return
        try:
            await handler(self, frame)
        except CredentialRevoked:
            await self._end_revoked()
        except BrokerError as exc:
            await self._send_event(events.error(frame=frame_type, ref=_frame_ref(frame), **exc.as_dict()))
        except Exception as exc:
            if no_connection_free(exc):
                logger.warning("no database connection free in the pool: frame %s answered busy", frame_type)
                await self._send_event(events.error(
                    code="busy", message=BUSY_MESSAGE,
                    retry_after=BUSY_RETRY_AFTER, frame=frame_type, ref=_frame_ref(frame),
                ))
                return
            logger.exception("websocket frame %s failed", frame_type)
            await self._send_event(events.error(
                code="server_error", message="Something went wrong on our side; it has been logged.",
                frame=frame_type, ref=_frame_ref(frame),
            ))

    async def _over_budget(self):
        budget = self.frame_budget
        if budget.flooding:
            await self._send_event(events.error(
                code="rate_limited", message="Too many frames; closing this connection.",
                retry_after=budget.retry_after(),
            ))
            self.revoked = True  # handle nothing more from this socket
            await self.close(code=CLOSE_POLICY_VIOLATION)
        elif budget.overdrawn == 1 or budget.overdrawn % 10 == 0:  # not one answer per flooded frame
            await self._send_event(events.error(
                code="rate_limited",
                message=f"Too many frames: at most {budget.burst} at once and {budget.rate:g} a second. "
                        "Frames are dropped until then.",
                retry_after=budget.retry_after(),
            ))

    async def on_message_send(self, frame):
        request = dict(sender=self.user, conversation_id=frame.get("conversation"), client_id=frame.get("client_id"),
                       text=frame.get("text"), media_id=frame.get("media_id"), reply_to=frame.get("reply_to"),
                       origin_channel=self.channel_name)
        sent = await self.call_on_loop(send.send_text_on_loop, **request)
        message, created = sent if sent is not None else await self.call(send.send_message, **request)
        await local_deliveries_first()
        status = "sent" if created else await self.call(send.current_status, message=message)
        await self._send_event(events.message_sent(message.client_id, message, status=status))

    async def on_ack(self, frame):
        await self._receipt(receipts.DELIVERED, receipts.mark_delivered, frame)

    async def on_read(self, frame):
        await self._receipt(receipts.READ, receipts.mark_read, frame)

    async def _receipt(self, status, service, frame):
        request = dict(user=self.user, conversation_id=frame.get("conversation"), seq=frame.get("seq"))
        if await self.call_on_loop(functools.partial(receipts.advance_on_loop, status), **request) is None:
            await self.call(service, **request)

    async def on_typing(self, frame):
        request = dict(user=self.user, conversation_id=frame.get("conversation"))
        typing = await self.call_on_loop(presence.typing_audience_on_loop, **request)
        conversation_id, audience = typing if typing is not None else await self.call(presence.typing_audience, **request)
        await apublish(audience, events.typing(conversation_id=conversation_id, user_id=self.user.pk))

    HANDLERS = {
        "message.send": on_message_send,
        "ack": on_ack,
        "read": on_read,
        "typing": on_typing,
    }

    # --- server -> client ---------------------------------------------------------------------
    async def push(self, payload):
        """Every published event arrives here (see broker.publish)."""
        if payload.get("skip_channel") == self.channel_name:
            return
        if payload["event_type"] == events.SESSION_REVOKED:
            if not payload.get("sessions_only") or self._a_session_other_than(payload["skip_session"]):
                await self._end_revoked()
            return
        if self.revoked:
            return
        await self.send(text_data=payload["frame"])

    def _a_session_other_than(self, skip_session: str | None) -> bool:
        """This socket is a browser session's, and not one of `skip_session`'s (a session group):
        whom a `sessions_only` revocation to the user's group is for (accounts.password_ended_sessions)."""
        return self.session_key is not None and session_group(self.session_key) != skip_session

    def _push_now(self, payload) -> bool:
        """`push`, called by the layer where it has the event: in the publisher's task in process
        (LocalChannelLayer.attach), in the reader of Redis when scaled out (RedisPubSubLayer.attach).
        The frame is written there and then. A revocation, which closes the socket, goes through the
        queue and `push`; what follows it queues behind it."""
        if payload.get("type") != PUSH or payload["event_type"] == events.SESSION_REVOKED:
            return False
        if payload.get("skip_channel") == self.channel_name or self.revoked:
            return True
        self._write_now(payload["frame"])
        return True

    def _write_now(self, frame: str) -> None:
        """Write `frame` to the socket in the caller's task (broker/eager.py). If the server makes
        the write wait (the socket pushes back), a task finishes it, and frames that come meanwhile
        queue behind it: this socket's order holds, and no other socket waits for this one."""
        if self.frames_waiting is not None:
            if len(self.frames_waiting) < settings.MESSENGER["MAX_FRAMES_WAITING"]:
                self.frames_waiting.append(frame)
            elif not self.revoked:
                self._close_too_slow()
            return
        try:
            rest = start_eagerly(self.send(text_data=frame))
        except Exception as exc:  # the socket closed meanwhile, say
            logger.debug("writing an event to a websocket failed: %r", exc)
            return
        if rest is not None:
            self.frames_waiting = deque()
            _write_in_background(self._write_rest(rest))

    def _close_too_slow(self) -> None:
        """The client does not read what it is sent: stop holding events for it (they are not lost:
        it catches up when it connects again) and close."""
        self.revoked = True  # handle nothing more from or for this socket
        self.frames_waiting.clear()
        _write_in_background(self.close(code=CLOSE_TOO_SLOW))

    async def _write_rest(self, rest):
        try:
            await rest
            while self.frames_waiting:
                await self.send(text_data=self.frames_waiting.popleft())
        finally:
            self.frames_waiting = None

    async def _send_event(self, event: dict):
        if not self.closing:  # e.g. the answer to a frame whose socket was revoked meanwhile
            await self.send(text_data=events.to_frame(event))

    async def close(self, code=None, reason=None):
        """Close once: frames and queued layer messages are handled in separate tasks, and either
        may close the socket while the other is still at work (the server refuses writes after it)."""
        if not self.closing:
            self.closing = True
            await super().close(code=code, reason=reason)

