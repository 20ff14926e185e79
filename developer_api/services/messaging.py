"""Apps sending messages: through the broker's own `send_message`, as the app's bot account, so
ordering, receipts and blocks work as between people. Here are the rules only apps have: the key
must still be valid when the message is stored, the recipient must have opted in, the month's
cap must not be reached, and a media message carries media of the app's, of its type.
"""

import secrets

from django.conf import settings
from django.db import IntegrityError, transaction

from broker import events
from broker.errors import Blocked, InvalidInput, NotFound
from broker.phone import normalize_phone_number
from broker.services import conversations, send
from developer_api.errors import NotOptedIn, UnsupportedType
from developer_api.models import ApiKey, DeveloperApp, OutboundMessage
from developer_api.services import keys, replies, usage, webhooks
from developer_api.services import media as app_media
from developer_api.services.apps import has_opted_in
from storage import selectors
from storage.models import Conversation, Media, Message

MEDIA_TYPES = app_media.MEDIA_TYPES
SUPPORTED_TYPES = ["text", *MEDIA_TYPES]


def new_public_id() -> str:
    return "msg_" + secrets.token_urlsafe(16)


def _clean_body(text: object) -> str:
    if not isinstance(text, dict) or "body" not in text:
        raise InvalidInput("A text message needs text: {\"body\": \"...\"}.", field="text.body")
    body = text["body"]
    if not isinstance(body, str) or not body.strip():
        raise InvalidInput("text.body must be a non-empty string.", field="text.body")
    limit = settings.MESSENGER["MAX_TEXT_LENGTH"]
    if len(body) > limit:
        raise InvalidInput(f"text.body is longer than {limit} characters.", field="text.body")
    return body


def _clean_media_ref(message_type: str, media: object) -> tuple[object, str]:
    """(media id, caption) of `{"<type>": {"id": ..., "caption": ...}}`; the id is checked later,
    against the app's media."""
    if not isinstance(media, dict) or media.get("id") is None:
        raise InvalidInput(
            f"{'An' if message_type[0] in 'aeiou' else 'A'} {message_type} message needs {message_type}: "
            f"{{\"id\": <media id>}}; upload the file with "
            "POST /developer/v1/media first.", field=f"{message_type}.id",
        )
    caption = media.get("caption")
    field = f"{message_type}.caption"
    if caption is None or caption == "":
        return media["id"], ""
    if message_type not in app_media.CAPTIONED_TYPES:
        raise InvalidInput(f"{message_type} messages have no caption.", field=field)
    caption = send.clean_message_text(caption, optional=True, field=field)
    return media["id"], caption


def _clean_client_id(client_id: object) -> str | None:
    if client_id is None:
        return None
    if not isinstance(client_id, str) or not client_id.strip() or len(client_id) > 64:
        raise InvalidInput("client_id must be a string of 1 to 64 characters.", field="client_id")
    return client_id


def _direct_conversation_id(*, app: DeveloperApp, user_id: int) -> int:
    low, high = sorted((app.bot_id, user_id))
    return Conversation.objects.filter(direct_key=f"{low}:{high}").values_list("pk", flat=True).first() or 0


def send_message(*, api_key: ApiKey, to: object, message_type: object, text: object = None,
                 media: object = None, client_id: object = None, context: object = None) -> tuple[OutboundMessage, bool]:
    """Send a message from the key's app to the user with phone number `to`; (record, created).

    `text` is the `{"body"}` of a text message; `media` the `{"id", "caption"?}` of an image, video,
    audio or document message, whose media the app uploaded (or received) and stored as that type.
    A `client_id` the app used before returns the earlier message instead of sending another.
    `context`, `{"message_id"}`, makes it a reply quoting that message of the app's chat with the user.
    A recipient who blocked the app makes a `failed` message (nothing reaches them).
    """
    if message_type not in SUPPORTED_TYPES:
        raise UnsupportedType(
            f"Messages of type {message_type!r} are not supported; send one of {', '.join(SUPPORTED_TYPES)}.",
            field="type",
        )
    if message_type == "text":
        body, media_id = _clean_body(text), None
    else:
        media_id, body = _clean_media_ref(message_type, media)
    phone = normalize_phone_number(to, field="to")
    client_id = _clean_client_id(client_id)
    quoted_id = replies.clean_context(context)
    try:
        return _send(api_key=api_key, phone=phone, message_type=message_type, body=body, media_id=media_id,
                     client_id=client_id, quoted_id=quoted_id)
    except IntegrityError:
        # The same client_id sent twice at the same moment: the other request stored it.
        existing = OutboundMessage.objects.filter(app_id=api_key.app_id, client_id=client_id).first()
        if client_id is None or existing is None:
            raise
        return existing, False


def _send(*, api_key: ApiKey, phone: str, message_type: str, body: str, media_id: object,
          client_id: str | None, quoted_id: str | None) -> tuple[OutboundMessage, bool]:
    with transaction.atomic():
        # Checked again here, inside the transaction that stores the message: a key revoked (or an
        # app suspended) after this request authenticated stops it all the same.
        key = keys.recheck(api_key)
        app = key.app
        if client_id is not None:
            existing = OutboundMessage.objects.filter(app=app, client_id=client_id).first()
            if existing is not None:
                return existing, False
        media: Media | None = None
        if media_id is not None:
            media = app_media.sendable_media(app=app, message_type=message_type, media_id=media_id)
        recipient = selectors.user_by_phone(phone_number=phone)
        # The same answer whether nobody has this number or they have not opted in: an app must not
        # learn who uses messenger by trying numbers.
        if recipient is None or recipient.is_business or not has_opted_in(app=app, user_id=recipient.pk):
            raise NotOptedIn(f"{phone} has not opted in to messages from this app.", field="to")
        reply_to = None
        if quoted_id is not None:
            reply_to = replies.quoted_seq(app=app, conversation_id=_direct_conversation_id(app=app, user_id=recipient.pk)
                                          or None, user_id=recipient.pk, message_id=quoted_id)
        billable = app.tier == DeveloperApp.Tier.COMMERCIAL
        record = OutboundMessage(public_id=new_public_id(), app=app, api_key=key, recipient=recipient, to=phone,
                                 client_id=client_id, tier=app.tier, billable=billable, month=usage.month_of(),
                                 message_type=message_type, media=media)
        if selectors.is_blocked_by(blocker_id=recipient.pk, blocked_id=app.bot_id):
            return _failed(record, app=app, code="recipient_unavailable",
                           reason="The recipient does not accept messages from this app."), True
        conversation, _ = conversations.direct_conversation_between(user=app.bot, peer=recipient)
        record.conversation_id = conversation.pk
        try:
            with transaction.atomic():
                record.month = usage.count_message(app=app, billable=billable)
                message, _ = send.send_message(sender=app.bot, conversation_id=conversation.pk,
                                               client_id=record.public_id, text=body,
                                               media_id=media.pk if media is not None else None, reply_to=reply_to)
        except Blocked:  # blocked between the check above and the send
            return _failed(record, app=app, code="recipient_unavailable",
                           reason="The recipient does not accept messages from this app."), True
        record.message = message
        record.save()
    return record, True


def _failed(record: OutboundMessage, *, app: DeveloperApp, code: str, reason: str) -> OutboundMessage:
    record.failed = True
    record.billable = False
    record.error_code = code
    record.error_reason = reason
    record.reported_status = "failed"
    if not record.conversation_id:
        record.conversation_id = _direct_conversation_id(app=app, user_id=record.recipient_id)
    record.save()
    webhooks.status_changed(outbound=record, status="failed")
    return record


def find_message(*, app: DeveloperApp, message_id: object) -> OutboundMessage:
    if not isinstance(message_id, str) or not message_id.startswith("msg_") or len(message_id) > 40:
        raise NotFound(f"This app sent no message {message_id!r}.", field="message_id")
    record = OutboundMessage.objects.select_related("message", "media").filter(app=app, public_id=message_id).first()
    if record is None:
        raise NotFound(f"This app sent no message {message_id!r}.", field="message_id")
    return record


def status_of(record: OutboundMessage) -> str:
    """sent, delivered or read (from the conversation's watermarks), or failed."""
    if record.failed:
        return "failed"
    if record.message is None:  # the conversation has been deleted: the last status known
        return record.reported_status
    return send.current_status(record.message)


def message_payload(record: OutboundMessage, *, status: str | None = None) -> dict:
    """The message as the app reads it; one a moderator took down is `"type": "removed"`, without
    its media (as the people in the conversation see it)."""
    removed = record.message is not None and record.message.kind == Message.Kind.REMOVED
    payload = {
        "id": record.public_id,
        "to": record.to,
        "type": "removed" if removed else record.message_type,
        "status": status or status_of(record),
        "created_at": events.timestamp(record.created_at),
    }
    if not removed and record.message_type in MEDIA_TYPES and record.media is not None:  # null once deleted
        payload[record.message_type] = app_media.media_object(record.media)
    context = replies.context_of(app=record.app, message=record.message) if record.message is not None else None
    if context is not None:
        payload["context"] = context
    if record.failed:
        payload["error"] = {"code": record.error_code, "reason": record.error_reason}
    return payload
