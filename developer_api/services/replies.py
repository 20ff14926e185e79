"""Replies in an app's chats, in the app's own terms: a message quotes another by its `seq` inside
the conversation (docs/protocol.md), and an app names messages by their ids instead, its own by the
id it sent them with (`msg_...`), a user's by `in_<id>` (as its webhook events do)."""

import re

from broker.errors import InvalidInput, NotFound
from developer_api.models import DeveloperApp, OutboundMessage
from storage.models import Message

_USER_MESSAGE_ID = re.compile(r"in_([0-9]{1,18})")


def clean_context(context: object) -> str | None:
    """The id of the message a reply quotes, from `{"message_id": ...}`; None without a context."""
    if context is None:
        return None
    message_id = context.get("message_id") if isinstance(context, dict) else None
    if not isinstance(message_id, str) or not message_id or len(message_id) > 64:
        raise InvalidInput('context must be {"message_id": "<the id of a message in your chat with the user>"}.',
                           field="context.message_id")
    return message_id


def quoted_seq(*, app: DeveloperApp, conversation_id: int | None, user_id: int, message_id: str) -> int:
    """The seq of the message `message_id` names in the app's chat with the user: one the app sent
    there, or one the user wrote there (not another chat's, nor a system notice)."""
    seq = None
    user_message = _USER_MESSAGE_ID.fullmatch(message_id)
    if conversation_id is None:
        pass
    elif message_id.startswith("msg_"):
        seq = (OutboundMessage.objects.filter(app=app, public_id=message_id, message__conversation_id=conversation_id)
               .values_list("message__seq", flat=True).first())
    elif user_message:
        seq = (Message.objects.filter(pk=int(user_message[1]), conversation_id=conversation_id, sender_id=user_id)
               .exclude(kind=Message.Kind.SYSTEM).values_list("seq", flat=True).first())
    if seq is None:
        raise NotFound(f"There is no message {message_id!r} in your chat with this user to reply to.",
                       field="context.message_id")
    return seq


def context_of(*, app: DeveloperApp, message: Message) -> dict | None:
    """`{"id"}` of the message `message` quotes, as the app names it; None for one quoting none."""
    if message.reply_to_seq is None:
        return None
    quoted = (Message.objects.filter(conversation_id=message.conversation_id, seq=message.reply_to_seq)
              .values_list("pk", "sender_id").first())
    if quoted is None:
        return None
    pk, sender_id = quoted
    if sender_id != app.bot_id:
        return {"id": f"in_{pk}"}
    public_id = OutboundMessage.objects.filter(message_id=pk).values_list("public_id", flat=True).first()
    return {"id": public_id} if public_id else None
