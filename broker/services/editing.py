"""A sender editing the text of a message they sent, for a while after sending it (as in WhatsApp).

The message keeps its seq and changes in place: its text, and `edited_at` (clients show "Edited").
The members learn of it as of a deletion for everyone (broker.services.deletion): a system notice
naming the seq, delivered as any message (live, by catch-up, in history), so every device of every
member hears of it. The notice carries no text: the message's row is the one place that holds it,
and a device holding the old copy fetches the message again. Only for a while
(`MESSENGER["EDIT_SECONDS"]`): a message others have long read and answered is settled.
"""

from django.conf import settings
from django.db import transaction

from broker import signals
from broker.errors import Forbidden, InvalidInput
from broker.services.message_lookup import check_within, member_and_message_locked
from broker.services.people import parse_id
from broker.services.receipts import notice_seen_by_its_author
from broker.services.send import append_message, clean_message_text
from storage.models import Message, User


def edit_message(*, user: User, conversation_id: object, seq: object, text: object) -> tuple[Message, Message | None]:
    """Give `user`'s message at `seq` the new `text` (for a message with media, its caption, which
    may be empty); the message as it now is, and the notice that tells the members, or None when the
    text is what it was already (nothing changes, nobody is told)."""
    conversation_id = parse_id(conversation_id, field="conversation")
    seq = parse_id(seq, field="seq")
    if text is None:
        raise InvalidInput("text is required: the message's new text.", field="text")
    with transaction.atomic():
        membership, message = member_and_message_locked(user=user, conversation_id=conversation_id, seq=seq)
        if message.sender_id != user.pk:
            raise Forbidden("You can edit only messages you sent.", field="seq")
        if message.kind == Message.Kind.REMOVED:
            raise Forbidden("This message was deleted; it cannot be edited.", field="seq")
        if message.kind != Message.Kind.TEXT:
            raise Forbidden("Only people's messages can be edited.", field="seq")
        # A caption may be emptied; a message that is only text keeps some.
        text = clean_message_text(text, optional=message.media_id is not None)
        if text == message.text:
            return message, None
        check_within(message, seconds=settings.MESSENGER["EDIT_SECONDS"], done="edited")
        notice = append_message(
            conversation_id=conversation_id, sender=None, kind=Message.Kind.SYSTEM,
            text=f"{user.display_name or 'Someone'} edited a message",
            event={"action": "message_edited", "seq": seq, "by": user.pk},
        )
        # The edit's time is its notice's: a client holding a copy with that `edited_at` (or later)
        # has this edit, and need not fetch the message again on the notice.
        message.text, message.edited_at = text, notice.created_at
        Message.objects.filter(pk=message.pk).update(text=message.text, edited_at=message.edited_at)
        notice_seen_by_its_author(membership_id=membership.pk, notice=notice)
        # Others holding copies of it update them too (developer_api: the apps' webhook events).
        signals.message_edited.send(sender=Message, message=message)
    return message, notice
