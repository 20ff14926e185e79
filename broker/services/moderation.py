"""Taking down what people sent: operators, and senders deleting their own for everyone
(broker.services.deletion).

A message taken down keeps its place: its seq, sender and time stay and its text and media go
(kind `removed`). Deleting the row instead would leave a gap in the conversation's seqs, and a
client acknowledges only up to its first gap (docs/protocol.md, guarantee 4): it would be sent
everything after it again at each connect, for ever. The members learn of it from a system
notice naming the seq, which reaches them as any message does (live, by catch-up, in history),
so a device that was offline replaces what it shows as well.
"""

import logging

from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from broker import signals
from broker.errors import NotFound
from broker.services.media import release_media
from broker.services.send import append_message
from storage.models import Message, Reaction

logger = logging.getLogger(__name__)

NOTICE_TEXT = "A message was removed by a moderator."


def take_down(*, message_id: int) -> Message | None:
    """Remove the text and media of a person's message, and tell the conversation's members. The
    notice, or None when there is nothing to take down (a system notice, or a message taken down
    already)."""
    with transaction.atomic():
        message = Message.objects.select_for_update().filter(pk=message_id).first()
        if message is None:
            raise NotFound(f"There is no message {message_id}.", field="message")
        if message.kind != Message.Kind.TEXT:
            return None
        return remove_message(message, notice_text=NOTICE_TEXT, notice_event={"action": "message_removed"})


def remove_message(message: Message, *, notice_text: str, notice_event: dict, mark: dict | None = None) -> Message:
    """Blank a person's message, locked by the caller's transaction, and append the notice that
    tells the members (`notice_event` gains the seq). `mark` is kept as the removed message's
    `event`: who removed it, for clients to say so."""
    media_id = message.media_id
    # Whether its text was edited goes with the text.
    Message.objects.filter(pk=message.pk).update(kind=Message.Kind.REMOVED, text="", media=None, event=mark,
                                                 edited_at=None)
    message.kind, message.text, message.media, message.event = Message.Kind.REMOVED, "", None, mark
    message.edited_at = None
    # Its reactions go with its content: they were to what it said. Members' devices drop them on
    # the notice, as they drop its text; no `message.reaction` is sent for each.
    Reaction.objects.filter(message_id=message.pk).delete()
    message.loaded_reactions = ()
    # Others holding copies of it drop them too (developer_api: the apps' webhook events).
    signals.message_taken_down.send(sender=Message, message=message)
    notice = append_message(
        conversation_id=message.conversation_id, sender=None, kind=Message.Kind.SYSTEM, text=notice_text,
        event={**notice_event, "seq": message.seq},
    )
    if media_id is not None:
        transaction.on_commit(lambda: _release_media_of_taken_down(media_id))
    return notice


def _release_media_of_taken_down(media_id: int) -> None:
    """The media (and its file) goes unless another message, a forward, carries it. Apart from the
    take-down, so that a forward of it committing meanwhile cannot undo the take-down (a 500 for
    the operator); the media is then the forward's. Should the release fail otherwise,
    `manage.py clean_media` collects what no message carries."""
    try:
        with transaction.atomic():
            release_media(media_id)
    except (IntegrityError, ProtectedError):
        logger.warning("media %s of a message taken down is carried by a message sent meanwhile; kept", media_id)
