"""Delivery and read receipts, kept as per-member watermarks that only ever move forward."""

from django.db import transaction
from django.db.models import F
from django.db.models.functions import Greatest

from broker import events, signals
from broker.errors import InvalidInput, NotFound
from broker.publish import publish_on_commit, user_group
from broker.services.people import parse_id
from storage import selectors
from storage.models import Membership, User

DELIVERED = "delivered"
READ = "read"


def _parse_seq(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput("seq must be a non-negative integer.", field="seq")
    return value


def _member_and_seq(*, user: User, conversation_id: object, seq: object) -> tuple[Membership, int]:
    conversation_id = parse_id(conversation_id, field="conversation")
    seq = _parse_seq(seq)
    member = selectors.membership(user_id=user.pk, conversation_id=conversation_id)
    if member is None:
        raise NotFound(f"You are not in conversation {conversation_id}.", field="conversation")
    if seq > member.conversation.last_seq:
        raise InvalidInput(
            f"seq {seq} is past the newest message ({member.conversation.last_seq}) of this conversation.", field="seq"
        )
    return member, seq


def announce_watermark(*, conversation_id: int, user_id: int, seq: int, status: str) -> None:
    """Tell every member's devices that `user_id` has received or read up to `seq` (after commit)."""
    recipients = selectors.member_ids(conversation_id=conversation_id)
    event = events.message_status(conversation_id=conversation_id, seq=seq, status=status, user_id=user_id)
    publish_on_commit([user_group(uid) for uid in recipients], event)
    transaction.on_commit(
        lambda: signals.watermark_advanced.send(
            sender=Membership, conversation_id=conversation_id, user_id=user_id, seq=seq, status=status
        )
    )


def mark_delivered(*, user: User, conversation_id: object, seq: object) -> bool:
    """Record that the user's devices hold everything up to `seq`; False if it was known already."""
    member, seq = _member_and_seq(user=user, conversation_id=conversation_id, seq=seq)
    with transaction.atomic():
        advanced = Membership.objects.filter(pk=member.pk, delivered_seq__lt=seq).update(delivered_seq=seq)
        if advanced:
            announce_watermark(conversation_id=member.conversation_id, user_id=user.pk, seq=seq, status=DELIVERED)
    return bool(advanced)


def mark_read(*, user: User, conversation_id: object, seq: object) -> bool:
    """Record that the user has read everything up to `seq` (which implies delivered)."""
    member, seq = _member_and_seq(user=user, conversation_id=conversation_id, seq=seq)
    with transaction.atomic():
        advanced = Membership.objects.filter(pk=member.pk, read_seq__lt=seq).update(
            read_seq=seq, delivered_seq=Greatest(F("delivered_seq"), seq)
        )
        if advanced:
            announce_watermark(conversation_id=member.conversation_id, user_id=user.pk, seq=seq, status=READ)
    return bool(advanced)
