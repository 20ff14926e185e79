"""Delivery and read receipts, kept as per-member watermarks that only ever move forward."""

import asyncio
import logging

from django.db import connection
from django.db.models import Value
from django.db.models.functions import Greatest

from broker import events, signals
from broker.errors import BrokerError, InvalidInput, NotFound
from broker.publish import after_commit, announcing_committed, publish_on_commit, user_group
from broker.services.accounts import check_device
from broker.services.people import parse_id
from storage import async_sql, selectors, sql
from storage.models import Departure, Membership, Message, User

logger = logging.getLogger(__name__)

DELIVERED = "delivered"
READ = "read"


_LARGEST_SEQ = 2**63 - 1  # the column's (bigint); PostgreSQL refuses a larger parameter outright


def notice_seen_by_its_author(*, membership_id: int, notice: Message) -> None:
    """Whoever caused a notice about a message (deleted it for everyone, edited it) has seen it: it
    must not count as unread for them on their other devices, or after a reload. Only where they
    had seen everything before it, so that it does not mark others' messages read that they never
    saw. Their devices are not told: each applies the same rule to the notice (docs/protocol.md)."""
    own = Membership.objects.filter(pk=membership_id)
    if not own.filter(read_seq=notice.seq - 1).update(read_seq=notice.seq, delivered_seq=notice.seq):
        own.filter(delivered_seq=notice.seq - 1).update(delivered_seq=notice.seq)


def _parse_seq(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput("seq must be a non-negative integer.", field="seq")
    if value > _LARGEST_SEQ:
        raise InvalidInput(f"seq {value} is past the newest message of this conversation.", field="seq")
    return value


def _checked(context: selectors.ConversationContext, *, device_id: int | None, seq: int) -> None:
    """A member's receipt's refusal, if any: a logged-out device, a seq past the newest message."""
    check_device(device_id=device_id, context=context)
    if seq > context.last_seq:
        raise InvalidInput(
            f"seq {seq} is past the newest message ({context.last_seq}) of this conversation.", field="seq"
        )


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
    after_commit(
        lambda: signals.watermark_advanced.send(
            sender=Membership, conversation_id=conversation_id, user_id=user_id, seq=seq, status=status,
            context=context,
        )
    )


# Receipts arrive for nearly every message delivered, so their statements are SQL (storage/sql.py).
# The WHERE clause makes each a no-op unless it moves the watermark forward, whatever else ran since.
# Each is one UPDATE, committed on its own (autocommit): no BEGIN and COMMIT round trips around it,
# and outside a transaction the announcement goes out at once, after the write. On PostgreSQL the
# UPDATE and the conversation's context it needs are one statement (a data-modifying CTE that moves
# the watermark only if the context allows it): scaled out, a statement is a round trip, and a
# one-to-one chat sends about as many receipts as messages (docs/performance.md, change 29).
_ADVANCE = {
    DELIVERED: "delivered_seq = %s",
    READ: "read_seq = %s, delivered_seq = CASE WHEN {table}.delivered_seq < %s THEN %s ELSE {table}.delivered_seq END",
}  # qualified: in PostgreSQL's statement the context's columns have the same names
_ADVANCE_PARAMS = {DELIVERED: 1, READ: 3}  # how many times the SET clause takes the seq
_WATERMARK_COLUMN = {DELIVERED: "delivered_seq", READ: "read_seq"}


def mark_delivered(*, user: User, conversation_id: object, seq: object, device_id: int | None = None) -> bool:
    """Record that the user's devices hold everything up to `seq`; False if it was known already.
    Given the `device_id` it comes from, the device must still be logged in (accounts.check_device)."""
    return _advance(DELIVERED, user=user, conversation_id=conversation_id, seq=seq, device_id=device_id)


def mark_read(*, user: User, conversation_id: object, seq: object, device_id: int | None = None) -> bool:
    """Record that the user has read everything up to `seq` (which implies delivered).
    Given the `device_id` it comes from, the device must still be logged in (accounts.check_device)."""
    return _advance(READ, user=user, conversation_id=conversation_id, seq=seq, device_id=device_id)


def _advance_statement(status: str, *, user: User, conversation_id: int, seq: int, device_id: int | None,
                       decline_bots: bool = False) -> tuple[str, list]:
    """PostgreSQL: the receipt's context and its UPDATE in one statement, with its parameters.
    `decline_bots`: move nothing where an app's bot is a member (`advance_on_loop` leaves those
    receipts to the service)."""
    membership, column = sql.table(Membership), _WATERMARK_COLUMN[status]
    context_query, context_params = selectors.conversation_context_query(
        user_id=user.pk, conversation_id=conversation_id, device_id=device_id)
    no_bots = "AND NOT EXISTS (SELECT 1 FROM context bot WHERE bot.is_business) " if decline_bots else ""
    return (
        f"WITH context AS ({context_query}), advanced AS (UPDATE {membership} "
        f"SET {_ADVANCE[status].format(table=membership)} "
        f"FROM context own WHERE {membership}.id = own.membership_id AND own.member_id = %s "
        f"AND own.device_active IS NOT FALSE AND %s <= own.last_seq AND {membership}.{column} < %s {no_bots}"
        "RETURNING 1) SELECT context.*, (SELECT count(*) FROM advanced) FROM context",
        [*context_params, *[seq] * _ADVANCE_PARAMS[status], user.pk, seq, seq],
    )


async def advance_on_loop(status: str, *, user: User, conversation_id: object, seq: object,
                          device_id: int | None = None, credential_checked: bool = False) -> bool | None:
    """`mark_delivered` or `mark_read` (by `status`) from the event loop on PostgreSQL
    (storage/async_sql.py), for a device's receipt: one statement, no hop to a database thread.
    None when it is not the common case (bad input, a refusal, a conversation with an app's bot,
    an error): the service then answers it, as it answers every receipt without this path.
    Without a device (checked within the statement), the caller must have checked the credential
    itself (`credential_checked`: a browser session's, broker/services/sessions.py)."""
    if (device_id is None and not credential_checked) or not async_sql.enabled():
        return None
    try:
        conversation_id = parse_id(conversation_id, field="conversation")
        seq = _parse_seq(seq)
    except BrokerError:
        return None
    statement, params = _advance_statement(status, user=user, conversation_id=conversation_id, seq=seq,
                                           device_id=device_id, decline_bots=True)
    rows = await async_sql.rows_or_none(statement, params, asking="a receipt")
    if rows is None:
        return None
    context = selectors.conversation_context_from_rows(rows, user_id=user.pk)
    if context is None or context.device_active is False or seq > context.last_seq or context.business_member_ids:
        return None
    if not rows[0][-1]:
        return False
    with announcing_committed(asyncio.get_running_loop()):
        announce_watermark(conversation_id=conversation_id, user_id=user.pk, seq=seq, status=status, context=context)
    return True


def _advance(status: str, *, user: User, conversation_id: object, seq: object, device_id: int | None) -> bool:
    conversation_id = parse_id(conversation_id, field="conversation")
    seq = _parse_seq(seq)
    membership, column = sql.table(Membership), _WATERMARK_COLUMN[status]
    if connection.vendor == "postgresql":
        rows = sql.rows(*_advance_statement(status, user=user, conversation_id=conversation_id, seq=seq,
                                            device_id=device_id))
        context = selectors.conversation_context_from_rows(rows, user_id=user.pk)
    else:
        context = selectors.conversation_context(user_id=user.pk, conversation_id=conversation_id, device_id=device_id)
    if context is None:  # not a member: perhaps a former one, acknowledging what catch-up sent
        check_device(device_id=device_id, context=None)
        received = _former_member_received(status, user_id=user.pk, conversation_id=conversation_id, seq=seq)
        if received is None:
            raise NotFound(f"You are not in conversation {conversation_id}.", field="conversation")
        return received
    _checked(context, device_id=device_id, seq=seq)
    if connection.vendor == "postgresql":
        advanced = rows[0][-1]
    else:
        if seq <= getattr(context, column):
            return False
        advanced = sql.execute(f"UPDATE {membership} SET {_ADVANCE[status].format(table=membership)} "
                               f"WHERE id = %s AND {column} < %s",
                               [*[seq] * _ADVANCE_PARAMS[status], context.membership_id, seq])
    if advanced:
        announce_watermark(conversation_id=conversation_id, user_id=user.pk, seq=seq, status=status, context=context)
    elif getattr(context, column) < seq:
        # It would have moved the watermark as read, but the membership was gone by the write: they
        # were removed meanwhile, and the receipt is a former member's (else catch-up would send
        # what it acknowledges again).
        return bool(_former_member_received(status, user_id=user.pk, conversation_id=conversation_id, seq=seq))
    return bool(advanced)


def _former_member_received(status: str, *, user_id: int, conversation_id: int, seq: int) -> bool | None:
    """A receipt for a group the user has left (`Departure`), up to the notice of their going:
    whether it moved their watermark on; None if it is no group of theirs. Nobody else is told
    (the members' statuses count the members only); their own devices are, as of any receipt of
    theirs. The row stays: a receipt again, once it is all acknowledged, changes nothing."""
    departure = Departure.objects.filter(user_id=user_id, conversation_id=conversation_id).first()
    if departure is None:
        return None
    if seq > departure.through_seq:
        raise InvalidInput(f"seq {seq} is past the last message of this conversation you may see "
                           f"({departure.through_seq}): you are no longer a participant.", field="seq")
    column = _WATERMARK_COLUMN[status]
    if seq <= getattr(departure, column):
        return False
    changes = {column: seq}
    if status == READ:
        changes["delivered_seq"] = Greatest("delivered_seq", Value(seq))
    if not Departure.objects.filter(pk=departure.pk, **{f"{column}__lt": seq}).update(**changes):
        return False
    event = events.message_status(conversation_id=conversation_id, seq=seq, status=status, user_id=user_id)
    publish_on_commit([user_group(user_id)], event)
    return True
