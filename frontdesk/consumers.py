"""The websocket endpoint (/ws/v1/): JSON frames in, broker calls, events out. See docs/protocol.md."""

import json
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from broker import events
from broker.errors import BrokerError
from broker.publish import apublish, device_group, user_group
from broker.services import presence, receipts, send
from storage import selectors

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4001
MAX_REF_LENGTH = 128


def _frame_ref(frame: dict):
    """What the client can match an error to: its own `ref`, else the message's client_id."""
    ref = frame.get("ref", frame.get("client_id") if frame.get("type") == "message.send" else None)
    if isinstance(ref, (str, int)) and not isinstance(ref, bool) and len(str(ref)) <= MAX_REF_LENGTH:
        return ref
    return None


class ChatConsumer(AsyncWebsocketConsumer):
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
        self.groups_joined = [user_group(user.pk)]
        if self.scope.get("device_id"):
            self.groups_joined.append(device_group(self.scope["device_id"]))
        # Join before reading the backlog: a message stored in between arrives twice at worst
        # (clients drop duplicates by conversation and seq), never zero times.
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        came_online = await database_sync_to_async(presence.connection_opened)(user_id=user.pk)
        if came_online:
            await self._announce_presence(online=True, last_seen=None)
        await self._send_backlog()

    async def disconnect(self, code):
        user = getattr(self, "user", None)
        if user is None:
            return
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)
        went_offline, last_seen = await database_sync_to_async(presence.connection_closed)(user_id=user.pk)
        if went_offline:
            await self._announce_presence(online=False, last_seen=last_seen)

    async def _announce_presence(self, *, online: bool, last_seen):
        audience = await database_sync_to_async(presence.presence_audience)(user_id=self.user.pk)
        await apublish(audience, presence.presence_event(user_id=self.user.pk, online=online, last_seen=last_seen))

    @database_sync_to_async
    def _backlog(self):
        return [events.message_new(m) for m in selectors.undelivered_messages(user=self.user)]

    async def _send_backlog(self):
        for event in await self._backlog():
            await self._send_event(event)

    # --- client -> server ---------------------------------------------------------------------
    async def receive(self, text_data=None, bytes_data=None):
        if getattr(self, "user", None) is None:
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
            frame = json.loads(text_data)
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
        except BrokerError as exc:
            await self._send_event(events.error(frame=frame_type, ref=_frame_ref(frame), **exc.as_dict()))
        except Exception:
            logger.exception("websocket frame %s failed", frame_type)
            await self._send_event(events.error(
                code="server_error", message="Something went wrong on our side; it has been logged.",
                frame=frame_type, ref=_frame_ref(frame),
            ))

    async def on_message_send(self, frame):
        message, created = await database_sync_to_async(send.send_message)(
            sender=self.user, conversation_id=frame.get("conversation"), client_id=frame.get("client_id"),
            text=frame.get("text"), origin_channel=self.channel_name,
        )
        status = "sent" if created else await database_sync_to_async(send.current_status)(message)
        await self._send_event(events.message_sent(message.client_id, message, status=status))

    async def on_ack(self, frame):
        await database_sync_to_async(receipts.mark_delivered)(
            user=self.user, conversation_id=frame.get("conversation"), seq=frame.get("seq")
        )

    async def on_read(self, frame):
        await database_sync_to_async(receipts.mark_read)(
            user=self.user, conversation_id=frame.get("conversation"), seq=frame.get("seq")
        )

    async def on_typing(self, frame):
        conversation_id, audience = await database_sync_to_async(presence.typing_audience)(
            user=self.user, conversation_id=frame.get("conversation")
        )
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
        event = payload["event"]
        await self._send_event(event)
        if event["type"] == events.SESSION_REVOKED:
            await self.close(code=CLOSE_UNAUTHENTICATED)

    async def _send_event(self, event: dict):
        await self.send(text_data=json.dumps(event, separators=(",", ":")))

