"""Every server-to-client event of the websocket protocol, and the payloads they carry.

This module is the single definition of the wire shapes; docs/protocol.md describes them and the
REST API returns the same `message_payload` and `user_payload`.
"""

import json
from datetime import datetime

from django.utils import timezone

from storage.models import Media, Membership, Message, User

MESSAGE_NEW = "message.new"
MESSAGE_SENT = "message.sent"
MESSAGE_STATUS = "message.status"
TYPING = "typing"
PRESENCE = "presence"
ERROR = "error"
SESSION_REVOKED = "session.revoked"
USER_UPDATED = "user.updated"
CONVERSATION_MUTED = "conversation.muted"
CONVERSATION_PINNED = "conversation.pinned"
CONVERSATION_DELETED = "conversation.deleted"
MESSAGE_REACTION = "message.reaction"


def to_frame(event: dict) -> str:
    """An event as the websocket text frame that carries it."""
    return json.dumps(event, separators=(",", ":"))


def timestamp(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def user_payload(user: User) -> dict:
    return {"id": user.pk, "phone_number": user.phone_number, "display_name": user.display_name, "about": user.about,
            "is_business": user.is_business, "photo": photo_payload(user.photo_id)}


def photo_payload(media_id: int | None) -> dict | None:
    """A user's or a group's photo, from its media id alone (no query): a photo is always an image
    (media.own_image), and every image has a thumbnail. A new photo is a new id, so a new URL."""
    if media_id is None:
        return None
    return {"id": media_id, "url": media_url(media_id), "thumbnail_url": media_url(media_id, thumbnail=True)}


def media_url(media_id: int, *, thumbnail: bool = False) -> str:
    return f"/api/v1/media/{media_id}/thumbnail" if thumbnail else f"/api/v1/media/{media_id}"


def user_updated(user: User) -> dict:
    """`user` changed their display name, about or photo (or an app its name or description)."""
    return {"type": USER_UPDATED, "user": user_payload(user)}


def conversation_deleted(*, conversation_id: int) -> dict:
    """The user deleted a group they had left from their list ("Delete chat"), on some device."""
    return {"type": CONVERSATION_DELETED, "conversation": conversation_id}


class Watermarks:
    """Members' delivered/read watermarks of one conversation, to derive each message's status.

    A message is delivered (read) once every member other than its sender has a delivered (read)
    watermark at or past its seq. Members added later start at their join point, so they never
    hold a message back. In a group its sender is alone in, a message stays sent.
    """

    def __init__(self, memberships: list[Membership]):
        self._delivered = sorted((m.delivered_seq, m.user_id) for m in memberships)
        self._read = sorted((m.read_seq, m.user_id) for m in memberships)

    @staticmethod
    def _lowest_excluding(ordered: list[tuple[int, int]], sender_id: int | None) -> int | None:
        for seq, user_id in ordered:
            if user_id != sender_id:
                return seq
        return None

    def status_of(self, message: Message) -> str:
        lowest_read = self._lowest_excluding(self._read, message.sender_id)
        if lowest_read is None:
            # Nobody else is in the group. "Read by everyone else" would be true of no one, and
            # a read tick nobody caused; "sent" is what the sender was told when it was stored
            # (REST 201, websocket message.sent), and nobody has it indeed.
            return "sent"
        if lowest_read >= message.seq:
            return "read"
        if self._lowest_excluding(self._delivered, message.sender_id) >= message.seq:
            return "delivered"
        return "sent"


def message_payload(message: Message, *, status: str = "sent") -> dict:
    return {
        "id": message.pk,
        "conversation": message.conversation_id,
        "seq": message.seq,
        "sender": message.sender_id,
        "kind": message.kind,
        "text": message.text,
        "event": message.event,
        "media": media_payload(message.media) if message.media_id else None,
        "client_id": message.client_id,
        "created_at": timestamp(message.created_at),
        "reply_to": message.reply_to_seq,
        "edited_at": timestamp(message.edited_at),
        "forwarded": bool(message.forwarded),
        "status": status,
        "reactions": reactions_payload(message.loaded_reactions),
    }


def reactions_payload(reactions) -> list[dict]:
    """A message's reactions as (user id, emoji) pairs, oldest first: one `{emoji, user}` each.
    Flat rather than grouped by emoji, so a `message.reaction` event (one person's change) updates it
    by replacing that person's entry; clients group them to show."""
    return [{"emoji": emoji, "user": user_id} for user_id, emoji in reactions]


def message_reaction(*, conversation_id: int, seq: int, user_id: int, emoji: str | None) -> dict:
    """`user_id` reacted to the message at `seq` with `emoji`, replacing any reaction of theirs to it,
    or (`emoji` None) took their reaction away."""
    return {"type": MESSAGE_REACTION, "conversation": conversation_id, "seq": seq, "user": user_id, "emoji": emoji}


def media_payload(media: Media) -> dict:
    """An uploaded file as clients see it: download it (and its thumbnail) from the URLs given."""
    return {
        "id": media.pk,
        "kind": media.kind,
        "mime_type": media.mime_type,
        "size": media.size,
        "sha256": media.sha256,
        "width": media.width,
        "height": media.height,
        "duration": media.duration,
        "name": media.name,
        "url": media_url(media.pk),
        "thumbnail_url": media_url(media.pk, thumbnail=True) if media.thumbnail else None,
    }


def message_new(message: Message) -> dict:
    return {"type": MESSAGE_NEW, "message": message_payload(message)}


def message_sent(client_id: str, message: Message, *, status: str = "sent") -> dict:
    return {"type": MESSAGE_SENT, "client_id": client_id, "message": message_payload(message, status=status)}


def message_status(*, conversation_id: int, seq: int, status: str, user_id: int) -> dict:
    """`user_id` has now received (status "delivered") or read everything up to `seq`."""
    return {"type": MESSAGE_STATUS, "conversation": conversation_id, "seq": seq, "status": status, "user": user_id}


def typing(*, conversation_id: int, user_id: int) -> dict:
    return {"type": TYPING, "conversation": conversation_id, "user": user_id}


def presence(*, user_id: int, online: bool, last_seen: datetime | None) -> dict:
    return {"type": PRESENCE, "user": user_id, "online": online, "last_seen": timestamp(last_seen)}


def error(*, code: str, message: str, frame: str | None = None, ref: object = None, field: str | None = None, **extra) -> dict:
    event = {"type": ERROR, "code": code, "message": message, "frame": frame, "ref": ref}
    if field:
        event["field"] = field
    event.update(extra)
    return event


def mute_payload(muted_until: datetime | None, *, now: datetime | None = None) -> dict:
    """`muted`, and `muted_until`: when it ends, null for a mute until unmuted (or none); a mute
    that has ended is none."""
    if muted_until is None or muted_until <= (now or timezone.now()):
        return {"muted": False, "muted_until": None}
    return {"muted": True, "muted_until": None if muted_until == Membership.MUTED_FOR_GOOD else timestamp(muted_until)}


def conversation_muted(*, conversation_id: int, muted_until: datetime | None) -> dict:
    """To the member's own devices: they muted or unmuted the conversation (on one of them)."""
    return {"type": CONVERSATION_MUTED, "conversation": conversation_id, **mute_payload(muted_until)}


def conversation_pinned(*, conversation_id: int, pinned_at: datetime | None) -> dict:
    """To the member's own devices: they pinned (or unpinned: null) the conversation."""
    return {"type": CONVERSATION_PINNED, "conversation": conversation_id, "pinned_at": timestamp(pinned_at)}


def session_revoked() -> dict:
    return {"type": SESSION_REVOKED}
