"""Sending: the one door through which every message, user-written or system, enters a conversation."""

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from broker import events, signals
from broker.errors import Blocked, Conflict, InvalidInput, NotFound
from broker.publish import publish_on_commit, user_group
from broker.ratelimit import check_send_rate
from broker.services.people import parse_id
from broker.services.receipts import announce_watermark
from storage import selectors
from storage.models import Conversation, Membership, Message, User


def append_message(*, conversation_id: int, sender: User | None, text: str = "", client_id: str | None = None,
                   kind: str = Message.Kind.TEXT, event: dict | None = None,
                   origin_channel: str | None = None) -> Message:
    """Store a message under the conversation's next seq. Must run inside a transaction.

    The UPDATE takes the conversation's row lock (the database's write lock on SQLite) until
    commit, so concurrent senders in any process get consecutive seqs; a rollback returns the seq.
    """
    now = timezone.now()
    Conversation.objects.filter(pk=conversation_id).update(last_seq=F("last_seq") + 1, last_activity_at=now)
    seq = Conversation.objects.filter(pk=conversation_id).values_list("last_seq", flat=True).get()
    message = Message.objects.create(
        conversation_id=conversation_id, seq=seq, sender=sender, client_id=client_id, kind=kind, text=text,
        event=event, created_at=now,
    )
    recipients = selectors.member_ids(conversation_id=conversation_id)
    publish_on_commit([user_group(uid) for uid in recipients], events.message_new(message), skip_channel=origin_channel)
    transaction.on_commit(lambda: signals.message_stored.send(sender=Message, message=message))
    return message


def _check_encodable(value: str, *, field: str) -> None:
    # JSON may spell unpaired surrogates ("\ud800"); no database can store them, so they are the
    # client's error (invalid), not a server error at insert time.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"{field} contains an unpaired surrogate, which is not valid Unicode.", field=field) from exc


def _clean_client_id(value: object) -> str:
    limit = settings.MESSENGER["MAX_CLIENT_ID_LENGTH"]
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("client_id is required: a unique string the client picks for each message.", field="client_id")
    if len(value) > limit:
        raise InvalidInput(f"client_id is longer than {limit} characters.", field="client_id")
    _check_encodable(value, field="client_id")
    return value


def _clean_text(value: object) -> str:
    limit = settings.MESSENGER["MAX_TEXT_LENGTH"]
    if not isinstance(value, str):
        raise InvalidInput("text must be a string.", field="text")
    if not value.strip():
        raise InvalidInput("text must not be empty.", field="text")
    if len(value) > limit:
        raise InvalidInput(f"text is longer than {limit} characters.", field="text")
    if "\x00" in value:
        raise InvalidInput("text must not contain NUL characters.", field="text")
    _check_encodable(value, field="text")
    return value


def _check_not_blocked(*, sender: User, conversation_id: int) -> None:
    peers = [uid for uid in selectors.member_ids(conversation_id=conversation_id) if uid != sender.pk]
    if len(peers) != 1:
        return
    if selectors.is_blocked_by(blocker_id=peers[0], blocked_id=sender.pk):
        raise Blocked("This person has blocked you; your message was not sent.", field="conversation")
    if selectors.is_blocked_by(blocker_id=sender.pk, blocked_id=peers[0]):
        raise Blocked("You have blocked this person; unblock them to send a message.", field="conversation")


def send_message(*, sender: User, conversation_id: object, client_id: object, text: object,
                 origin_channel: str | None = None) -> tuple[Message, bool]:
    """Store a text message and announce it; returns (message, created).

    A client_id the sender used before returns the message it made then, so a retry after a lost
    reply never makes a second message.
    """
    conversation_id = parse_id(conversation_id, field="conversation")
    client_id = _clean_client_id(client_id)
    text = _clean_text(text)

    existing = selectors.message_by_client_id(sender_id=sender.pk, client_id=client_id)
    if existing is not None:
        return _retried(existing, conversation_id), False

    member = selectors.membership(user_id=sender.pk, conversation_id=conversation_id)
    if member is None:
        raise NotFound(f"You are not in conversation {conversation_id}.", field="conversation")
    if member.conversation.kind == Conversation.Kind.DIRECT:
        _check_not_blocked(sender=sender, conversation_id=conversation_id)
    check_send_rate(user_id=sender.pk)

    try:
        with transaction.atomic():
            message = append_message(
                conversation_id=conversation_id, sender=sender, text=text, client_id=client_id,
                origin_channel=origin_channel,
            )
            author_has_seen(author=sender, conversation_id=conversation_id, seq=message.seq)
    except IntegrityError:
        existing = selectors.message_by_client_id(sender_id=sender.pk, client_id=client_id)
        if existing is None:
            raise
        return _retried(existing, conversation_id), False
    return message, True


def _retried(existing: Message, conversation_id: int) -> Message:
    if existing.conversation_id != conversation_id:
        raise Conflict("This client_id was already used for a message in another conversation.", field="client_id")
    return existing


def author_has_seen(*, author: User, conversation_id: int, seq: int) -> None:
    """Writing in a conversation (a message, or a change that makes a notice) means having seen it:
    the author's watermarks move to the new seq.

    If that reads messages of others that were still unread, the other members hear of it.
    """
    mine = Membership.objects.filter(conversation_id=conversation_id, user=author)
    before = mine.values_list("read_seq", flat=True).first()
    if before is None:  # the author has just left the conversation
        return
    mine.update(delivered_seq=Greatest(F("delivered_seq"), seq), read_seq=Greatest(F("read_seq"), seq))
    if before < seq - 1:
        announce_watermark(conversation_id=conversation_id, user_id=author.pk, seq=seq, status="read")


def current_status(message: Message) -> str:
    """The message's status now ("sent", "delivered" or "read"), from the members' watermarks."""
    return events.Watermarks(list(selectors.members(conversation_id=message.conversation_id))).status_of(message)
