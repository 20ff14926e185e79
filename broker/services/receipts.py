"""Delivery and read receipts, kept as per-member watermarks that only ever move forward."""

from django.db import transaction

from broker import events, signals
from broker.errors import InvalidInput, NotFound
from broker.publish import publish_on_commit, user_group
from broker.services.accounts import check_device
from broker.services.people import parse_id
from storage import selectors, sql
from storage.models import Membership, User

DELIVERED = "delivered"
READ = "read"


def _parse_seq(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput("seq must be a non-negative integer.", field="seq")
    return value


def _context_and_seq(*, user: User, conversation_id: object, seq: object,
                     device_id: int | None) -> tuple[int, selectors.ConversationContext, int]:
    conversation_id = parse_id(conversation_id, field="conversation")
    seq = _parse_seq(seq)
    context = selectors.conversation_context(user_id=user.pk, conversation_id=conversation_id, device_id=device_id)
    check_device(device_id=device_id, context=context)
    if context is None:
        raise NotFound(f"You are not in conversation {conversation_id}.", field="conversation")
    if seq > context.last_seq:
        raise InvalidInput(
            f"seq {seq} is past the newest message ({context.last_seq}) of this conversation.", field="seq"
        )
    return conversation_id, context, seq


def announce_watermark(*, conversation_id: int, user_id: int, seq: int, status: str,
                       member_ids: list[int] | None = None,
                       context: selectors.ConversationContext | None = None) -> None:
    """Tell every member's devices that `user_id` has received or read up to `seq` (after commit).

    `member_ids`, or the whole `context`, may be passed by a caller that has just read them."""
    if member_ids is None and context is not None:
        member_ids = context.member_ids
    recipients = member_ids if member_ids is not None else selectors.member_ids(conversation_id=conversation_id)
    event = events.message_status(conversation_id=conversation_id, seq=seq, status=status, user_id=user_id)
    publish_on_commit([user_group(uid) for uid in recipients], event)
    transaction.on_commit(
        lambda: signals.watermark_advanced.send(
            sender=Membership, conversation_id=conversation_id, user_id=user_id, seq=seq, status=status,
            context=context,
        )
    )


# Receipts arrive for nearly every message delivered, so their statements are SQL (storage/sql.py).
# The WHERE clause makes each a no-op unless it moves the watermark forward, whatever else ran since.
# Each is one UPDATE, committed on its own (autocommit): no BEGIN and COMMIT round trips around it,
# and outside a transaction the announcement goes out at once, after the write.
def mark_delivered(*, user: User, conversation_id: object, seq: object, device_id: int | None = None) -> bool:
    """Record that the user's devices hold everything up to `seq`; False if it was known already.
    Given the `device_id` it comes from, the device must still be logged in (accounts.check_device)."""
    conversation_id, context, seq = _context_and_seq(user=user, conversation_id=conversation_id, seq=seq,
                                                     device_id=device_id)
    if seq <= context.delivered_seq:
        return False
    advanced = sql.execute(
        f"UPDATE {sql.table(Membership)} SET delivered_seq = %s WHERE id = %s AND delivered_seq < %s",
        [seq, context.membership_id, seq],
    )
    if advanced:
        announce_watermark(conversation_id=conversation_id, user_id=user.pk, seq=seq, status=DELIVERED,
                           context=context)
    return bool(advanced)


def mark_read(*, user: User, conversation_id: object, seq: object, device_id: int | None = None) -> bool:
    """Record that the user has read everything up to `seq` (which implies delivered).
    Given the `device_id` it comes from, the device must still be logged in (accounts.check_device)."""
    conversation_id, context, seq = _context_and_seq(user=user, conversation_id=conversation_id, seq=seq,
                                                     device_id=device_id)
    if seq <= context.read_seq:
        return False
    advanced = sql.execute(
        f"UPDATE {sql.table(Membership)} SET read_seq = %s, "
        "delivered_seq = CASE WHEN delivered_seq < %s THEN %s ELSE delivered_seq END "
        "WHERE id = %s AND read_seq < %s",
        [seq, seq, seq, context.membership_id, seq],
    )
    if advanced:
        announce_watermark(conversation_id=conversation_id, user_id=user.pk, seq=seq, status=READ, context=context)
    return bool(advanced)
