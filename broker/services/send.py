"""Sending: the one door through which every message, user-written or system, enters a conversation."""

import asyncio
import contextlib
import functools
import logging

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.utils import timezone

from broker import events, signals
from broker.errors import Blocked, BrokerError, Conflict, InvalidInput, NotFound
from broker.publish import after_commit, announcing_committed, publish_on_commit, user_group
from broker.ratelimit import send_rate_refusal, send_window_start
from broker.services.accounts import check_device
from broker.services.media import usable_media
from broker.services.people import not_a_member, parse_id
from broker.services.receipts import announce_watermark
from broker.text import check_encodable, clean_text, json_type
from storage import async_sql, selectors, sql
from storage.models import Conversation, Media, Membership, Message, User

logger = logging.getLogger(__name__)


def append_message(*, conversation_id: int, sender: User | None, text: str = "", client_id: str | None = None,
                   kind: str = Message.Kind.TEXT, event: dict | None = None, media: Media | None = None,
                   origin_channel: str | None = None, member_ids: list[int] | None = None,
                   context: selectors.ConversationContext | None = None,
                   author_membership_id: int | None = None, reply_to_seq: int | None = None,
                   forwarded: bool = False) -> Message:
    """Store a message under the conversation's next seq. Must run inside a transaction.

    The UPDATE takes the conversation's row lock (the database's write lock on SQLite) until
    commit, so concurrent senders in any process get consecutive seqs; a rollback returns the seq.
    `member_ids` (who hears of it), or the whole `context`, may be passed by a caller that has just
    read them. With `author_membership_id`, the author's watermarks move to the new seq as well
    (what `author_has_seen` writes, without its announcement). Given a `context`, read before the
    lock, the message is stored only if the members are still those it names: else
    `_MembersChanged`, having written nothing. `reply_to_seq` (the message it quotes) is stored as
    given: the caller has checked it.
    """
    message = Message(conversation_id=conversation_id, sender=sender, client_id=client_id, kind=kind,
                      text=text, event=event, media=media, created_at=timezone.now(), reply_to_seq=reply_to_seq,
                      forwarded=forwarded)
    _store(message, author_membership_id=author_membership_id,
           members_version=context.members_version if context is not None else None)
    if member_ids is None and context is not None:
        member_ids = context.member_ids
    recipients = member_ids if member_ids is not None else selectors.member_ids(conversation_id=conversation_id)
    _announce_new(message, recipients=recipients, origin_channel=origin_channel, context=context)
    return message


def _announce_new(message: Message, *, recipients: list[int], origin_channel: str | None,
                  context: selectors.ConversationContext | None) -> None:
    publish_on_commit([user_group(uid) for uid in recipients], events.message_new(message), skip_channel=origin_channel)
    after_commit(lambda: signals.message_stored.send(sender=Message, message=message, context=context))


# The hot path's statements are SQL (storage/sql.py says why), built once per database.
_WATERMARKS_TO_SEQ = (  # never backwards; read_seq <= delivered_seq holds after it
    "delivered_seq = CASE WHEN delivered_seq < {seq} THEN {seq} ELSE delivered_seq END, "
    "read_seq = CASE WHEN read_seq < {seq} THEN {seq} ELSE read_seq END"
)


@functools.cache
def _message_fields() -> list:
    """What a message's INSERT writes, but its seq (which each statement takes its own way)."""
    names = ("conversation_id", "sender_id", "client_id", "kind", "text", "event", "media", "created_at", "reply_to_seq",
             "forwarded")
    return [Message._meta.get_field(name) for name in names]


@functools.cache
def _message_columns() -> str:
    """The INSERT's column list: `_message_fields()`, then seq."""
    return ", ".join(connection.ops.quote_name(field.column) for field in _message_fields()) + ", seq"


def _insert_params(message: Message, db) -> tuple[object, list]:
    """The unsaved message's time as the conversation's last activity, and its INSERT's values."""
    now = db.ops.adapt_datetimefield_value(message.created_at)
    return now, [field.get_db_prep_save(getattr(message, field.attname), db) for field in _message_fields()]


def _mark_saved(message: Message, db) -> None:
    message._state.adding = False
    message._state.db = db.alias


@functools.cache
def _statements(vendor: str) -> dict[str, str]:
    """The statements for the database of this vendor (the argument is the cache's key)."""
    conversation, message, membership = sql.table(Conversation), sql.table(Message), sql.table(Membership)
    columns = _message_columns()
    values = ", ".join(["%s"] * len(_message_fields()))
    next_seq = (f"UPDATE {conversation} SET last_seq = last_seq + 1, last_activity_at = %s WHERE id = %s "
                "RETURNING last_seq")
    # PostgreSQL: the seq, the INSERT and (optionally) the author's watermarks in one statement of
    # data-modifying CTEs. Scaled out, every statement is a round trip and a wait for the GIL on the
    # way back; these were three of a send's seven. The conversation's row lock still orders
    # concurrent senders. The seq is a scalar subquery in VALUES, not INSERT ... SELECT, so that the
    # values are typed by their columns; a conversation that is gone leaves it NULL: an
    # IntegrityError, and nothing is written.
    insert_with_seq = (f"INSERT INTO {message} ({columns}) VALUES ({values}, (SELECT last_seq FROM next)) "
                       "RETURNING id, seq")
    seen = (f"seen AS (UPDATE {membership} SET {_WATERMARKS_TO_SEQ.format(seq='next.last_seq')} FROM next "
            f"WHERE {membership}.id = %s)")
    # With the members as a send read them (`members_version`): no row, and nothing stored, if
    # they changed since. INSERT ... SELECT, so that no seq inserts no row (not a NULL seq).
    next_seq_checked = (f"UPDATE {conversation} SET last_seq = last_seq + 1, last_activity_at = %s "
                        "WHERE id = %s AND members_version = %s RETURNING last_seq")
    insert_from_next = (f"INSERT INTO {message} ({columns}) SELECT {_typed_message_values()}, next.last_seq "
                        "FROM next RETURNING id, seq") if vendor == "postgresql" else ""
    return {
        "next_seq": next_seq,
        "next_seq_checked": next_seq_checked,
        "store_checked": f"WITH next AS ({next_seq_checked}) {insert_from_next}",
        "store_and_see_checked": f"WITH next AS ({next_seq_checked}), {seen} {insert_from_next}",
        "insert": f"INSERT INTO {message} ({columns}) VALUES ({values}, %s) RETURNING id",
        "watermarks": f"UPDATE {membership} SET {_WATERMARKS_TO_SEQ.format(seq='%s')} WHERE id = %s",
        "store": f"WITH next AS ({next_seq}) {insert_with_seq}",
        "store_and_see": f"WITH next AS ({next_seq}), {seen} {insert_with_seq}",
    }


@functools.cache
def _typed_message_values() -> str:
    """The INSERT's values as `%s::type`: in INSERT ... SELECT (unlike VALUES) PostgreSQL does not
    type a parameter by its column, and text does not turn into jsonb on its own."""
    return ", ".join(f"%s::{field.cast_db_type(connection)}" for field in _message_fields())


def _checks(context_query: str, send_limit_query: str, reply_query: str | None) -> str:
    """The part of a send's statement that reads: the context and the send limit, as CTEs named
    `context` and `limit_reached`, and for a reply the message it quotes (`reply`: its kind, no row
    if the sender cannot see it there)."""
    reply = f", reply AS ({reply_query})" if reply_query is not None else ""
    return f"WITH context AS ({context_query}), limit_reached AS ({send_limit_query}){reply}"


def _reply_column(reply_query: str | None) -> str:
    """For a reply, the quoted message's kind (null: none the sender can see), right after the
    context's columns (`selectors.CONTEXT_COLUMNS`); nothing for a message that quotes none, whose
    statement stays as it was."""
    return "(SELECT kind FROM reply), " if reply_query is not None else ""


@functools.cache  # keyed by the queries' text, as _check_and_store_statement
def _context_and_send_limit_statement(context_query: str, send_limit_query: str, reply_query: str | None = None) -> str:
    """`_context_and_send_limit`'s query: the context's rows, each with (for a reply) the quoted
    message's kind and the send limit's answer."""
    return (f"{_checks(context_query, send_limit_query, reply_query)} SELECT context.*, {_reply_column(reply_query)}"
            "(SELECT created_at FROM limit_reached) FROM context")


@functools.cache  # keyed by the queries' text: a handful of shapes (with or without a device, a reply)
def _check_and_store_statement(context_query: str, send_limit_query: str, decline_bots: bool = False,
                               reply_query: str | None = None) -> str:
    """PostgreSQL: a send in one statement. It reads the conversation's context and the sender's
    send limit, and stores the message (seq, INSERT, the sender's watermarks) only if they allow it:
    a member, on a logged-in device, no block either way, not a retry, under the limit (the
    service then says which it was from the rows, the context as `conversation_context` returns it
    with the limit's answer and the stored message's id and seq). Scaled out, each statement is a
    round trip and a wake-up of two processes; a send took three of them: the context, the send
    counter in Redis and the store (docs/performance.md, change 29).

    `decline_bots`: store nothing where an app's bot is a member (`send_text_on_loop` leaves those
    messages to `send_message`). `reply_query`: a reply, stored only if it quotes a person's
    message the sender can see (`selectors.reply_target_query`): one lookup on the unique
    (conversation, seq) index, and for a message that quotes none the statement is as before."""
    conversation, message, membership = sql.table(Conversation), sql.table(Message), sql.table(Membership)
    no_bots = "AND NOT EXISTS (SELECT 1 FROM context bot WHERE bot.is_business) " if decline_bots else ""
    quotes = (f"AND EXISTS (SELECT 1 FROM reply WHERE reply.kind <> '{Message.Kind.SYSTEM.value}') "
              if reply_query is not None else "")
    return (
        f"{_checks(context_query, send_limit_query, reply_query)}, "
        "allowed AS (SELECT 1 FROM context own WHERE own.member_id = %s AND own.device_active IS NOT FALSE "
        "AND own.existing_message_id IS NULL AND NOT EXISTS "
        "(SELECT 1 FROM context other WHERE other.blocks_user OR other.blocked_by_user) "
        f"{no_bots}{quotes}AND (own.is_business OR NOT EXISTS (SELECT 1 FROM limit_reached))), "
        # The row lock orders the send; what the context read of the members is checked against the
        # row as locked (`members_version`): a member removed meanwhile must not have it stored,
        # nor be sent it. Then nothing is stored, and the caller reads again.
        f"next AS (UPDATE {conversation} SET last_seq = last_seq + 1, last_activity_at = %s "
        "WHERE id = %s AND members_version = (SELECT members_version FROM context LIMIT 1) "
        "AND EXISTS (SELECT 1 FROM allowed) RETURNING last_seq), "
        f"seen AS (UPDATE {membership} SET {_WATERMARKS_TO_SEQ.format(seq='next.last_seq')} FROM next "
        f"WHERE {membership}.id = (SELECT membership_id FROM context WHERE member_id = %s)), "
        f"stored AS (INSERT INTO {message} ({_message_columns()}) SELECT {_typed_message_values()}, next.last_seq FROM next "
        "RETURNING id, seq) "
        f"SELECT context.*, {_reply_column(reply_query)}(SELECT created_at FROM limit_reached), "
        "(SELECT id FROM stored), (SELECT seq FROM stored) FROM context"
    )


class _MembersChanged(Exception):
    """A send's context, read before the conversation's lock, no longer names its members: nothing
    was stored, and the send starts again from a new reading."""


def _store(message: Message, *, author_membership_id: int | None, members_version: int | None = None) -> None:
    """Give the unsaved message the conversation's next seq and INSERT it (what `save()` does,
    without building the query); with `author_membership_id`, move the author's watermarks too.
    With `members_version`, only if the conversation's members are still at that version
    (`_MembersChanged` if not, or if the conversation is gone)."""
    db = connections[DEFAULT_DB_ALIAS]
    statements = _statements(db.vendor)
    now, values = _insert_params(message, db)
    checked = members_version is not None
    if db.vendor == "postgresql":
        version = [members_version] if checked else []
        if author_membership_id is None:
            statement = statements["store_checked" if checked else "store"]
            params = [now, message.conversation_id, *version]
        else:
            statement = statements["store_and_see_checked" if checked else "store_and_see"]
            params = [now, message.conversation_id, *version, author_membership_id]
        row = sql.one(statement, [*params, *values])
        if row is None:
            raise _MembersChanged
        message.pk, message.seq = row
    else:
        if checked:
            row = sql.one(statements["next_seq_checked"], [now, message.conversation_id, members_version])
        else:
            row = sql.one(statements["next_seq"], [now, message.conversation_id])
        if row is None and checked:
            raise _MembersChanged
        if row is None:
            raise Conversation.DoesNotExist(f"No conversation {message.conversation_id}.")
        message.seq = row[0]
        message.pk = sql.one(statements["insert"], [*values, message.seq])[0]
        if author_membership_id is not None:
            _move_watermarks(membership_id=author_membership_id, seq=message.seq)
    _mark_saved(message, db)


def _move_watermarks(*, membership_id: int, seq: int) -> None:
    sql.execute(_statements(connection.vendor)["watermarks"], [seq, seq, seq, seq, membership_id])


def _clean_client_id(value: object) -> str:
    limit = settings.MESSENGER["MAX_CLIENT_ID_LENGTH"]
    if value is not None and not isinstance(value, str):  # given, but not as a string (a number, say)
        raise InvalidInput(f"client_id must be a string, not {json_type(value)}: a unique string the client "
                           "picks for each message.", field="client_id")
    if value is None or not value.strip():
        raise InvalidInput("client_id is required: a unique string the client picks for each message.", field="client_id")
    if len(value) > limit:
        raise InvalidInput(f"client_id is longer than {limit} characters.", field="client_id")
    if "\x00" in value:  # PostgreSQL's text cannot hold it
        raise InvalidInput("client_id must not contain NUL characters.", field="client_id")
    check_encodable(value, field="client_id")
    return value


def clean_message_text(value: object, *, optional: bool = False, field: str = "text") -> str:
    """The message's text, kept as typed; with media it is the caption, which may be empty (or absent)."""
    if optional and value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string.", field=field)
    if not optional and not value.strip():
        raise InvalidInput(f"{field} must not be empty.", field=field)
    return clean_text(value, field=field, max_length=settings.MESSENGER["MAX_TEXT_LENGTH"], strip=False)


def clean_reply_to(value: object) -> int | None:
    """The seq of the message a reply quotes, or None for a message that quotes none."""
    if value is None:
        return None
    try:
        return parse_id(value, field="reply_to")
    except InvalidInput:
        raise InvalidInput("reply_to must be the seq of a message in this conversation (a positive integer), "
                           "or null.", field="reply_to") from None


def _check_reply_target(*, reply_to: int | None, kind: str | None, conversation_id: int) -> None:
    """Refuse a reply whose quoted message (`kind`, as the send's statement read it: None if the
    sender cannot see one at that seq) may not be quoted: none there for them, or a system notice.
    A message taken down or deleted for everyone may be: it keeps its place, and clients show the
    quote as deleted."""
    if reply_to is None:
        return
    if kind is None:
        raise NotFound(f"reply_to: there is no message {reply_to} in conversation {conversation_id} "
                       "that you can see.", field="reply_to")
    if kind == Message.Kind.SYSTEM:
        raise InvalidInput(f"reply_to: message {reply_to} is a system notice; only people's messages can be "
                           "replied to.", field="reply_to")


def _check_not_blocked(context: selectors.ConversationContext) -> None:
    if context.blocked_by:
        raise Blocked("This person has blocked you; your message was not sent.", field="conversation")
    if context.blocking:
        raise Blocked("You have blocked this person; unblock them to send a message.", field="conversation")


def send_message(*, sender: User, conversation_id: object, client_id: object, text: object = None,
                 media_id: object = None, origin_channel: str | None = None,
                 device_id: int | None = None, reply_to: object = None, forwarded: bool = False) -> tuple[Message, bool]:
    """Store a message (text, or media uploaded before with an optional caption) and announce it;
    returns (message, created).

    A client_id the sender used before returns the message it made then, so a retry after a lost
    reply never makes a second message. Given the `device_id` it comes from (a websocket's), the
    device must still be logged in (accounts.check_device), or nothing is stored. `reply_to`: the
    seq of the message it quotes, one of a person's the sender can see in the conversation
    (`_check_reply_target`), checked within the send's own statement. `forwarded`: a copy of a
    message of another chat (broker.services.forwarding, which has checked it), marked so.
    """
    conversation_id = parse_id(conversation_id, field="conversation")
    client_id = _clean_client_id(client_id)
    text = clean_message_text(text, optional=media_id is not None)
    reply_to = clean_reply_to(reply_to)

    if media_id is None and not forwarded:  # the hot path: a text typed here
        if connections[DEFAULT_DB_ALIAS].vendor == "postgresql":
            return _check_and_store(sender=sender, conversation_id=conversation_id, client_id=client_id, text=text,
                                    origin_channel=origin_channel, device_id=device_id, reply_to=reply_to)
        stored = _store_text_on_driver(sender=sender, conversation_id=conversation_id, client_id=client_id,
                                       text=text, origin_channel=origin_channel, device_id=device_id,
                                       reply_to=reply_to)
        if stored is not None:
            return stored

    media = None
    for _ in range(STORE_ATTEMPTS):
        # One query for membership, the conversation's kind, every member (the recipients), blocks,
        # the sender's read watermark, a message already sent with this client_id and the send
        # limit: the hot path's reads, before any lock is taken.
        now = timezone.now()
        context, reply_kind, limit_reached_at = _context_and_send_limit(
            sender=sender, conversation_id=conversation_id, client_id=client_id, device_id=device_id, now=now,
            reply_to=reply_to)
        earlier = _earlier_or_refusal(sender=sender, conversation_id=conversation_id, client_id=client_id,
                                      device_id=device_id, context=context)
        if earlier is not None:
            return earlier, False
        _check_reply_target(reply_to=reply_to, kind=reply_kind, conversation_id=conversation_id)
        _check_send_limit(sender=sender, reached_at=limit_reached_at, now=now)
        if media_id is not None and media is None:
            media = usable_media(sender=sender, media_id=media_id)
        try:
            with _transaction_for_store():
                message = append_message(
                    conversation_id=conversation_id, sender=sender, text=text, client_id=client_id, media=media,
                    origin_channel=origin_channel, context=context, author_membership_id=context.membership_id,
                    reply_to_seq=reply_to, forwarded=forwarded,
                )
                _announce_read_by_author(author=sender, conversation_id=conversation_id, seq=message.seq,
                                         read_seq_before=context.read_seq, member_ids=context.member_ids,
                                         context=context)
        except _MembersChanged:
            continue
        except IntegrityError as error:
            return _winner_of_race(sender=sender, client_id=client_id, conversation_id=conversation_id,
                                   error=error), False
        return message, True
    raise _members_kept_changing(conversation_id)


# How often a send reads its conversation again when its members changed between the reading and
# the store: each change of members is an admin's act, so a second reading all but always holds.
STORE_ATTEMPTS = 3


def _members_kept_changing(conversation_id: int) -> Conflict:
    return Conflict(f"The members of conversation {conversation_id} kept changing while this message was "
                    "being sent; nothing was stored: send it again.", field="conversation")


class _NotTheCommonCase(Exception):
    """Raised inside `_store_text_on_driver`'s transaction to roll it back and leave the send to
    the general path."""


def _store_text_on_driver(*, sender: User, conversation_id: int, client_id: str, text: str,
                          origin_channel: str | None, device_id: int | None,
                          reply_to: int | None = None) -> tuple[Message, bool] | None:
    """send_message's common case on SQLite (a text message the context allows: a member, on a
    logged-in device, no block either way, not a retry, under the send limit, quoting nothing or a
    person's message the sender can see) in one transaction on
    the driver's own connection, and announced after it commits. None, having written nothing,
    for anything else, or where Django must see the statements (an open transaction, queries
    watched): the general path then answers it, refusals included.

    The same statements as the general path, without what Django wraps around them: its atomic
    block, its field adaptation (the values of a text message are known) and a connection lookup
    and checks per statement. That was half of a send's time on the event loop, and after a pause
    (every message, at a few a second) the hot path's Python takes three to five times as long as
    back to back (docs/performance.md, change 47)."""
    db = connections[DEFAULT_DB_ALIAS]
    driver = sql.sqlite_driver_for_transaction(db)
    if driver is None:
        return None
    message, (context_query, context_params), (limit_query, limit_params), (reply_query, reply_params) = \
        _text_message_and_checks(sender=sender, conversation_id=conversation_id, client_id=client_id, text=text,
                                 device_id=device_id, reply_to=reply_to)
    statements = _statements("sqlite")
    now = db.ops.adapt_datetimefield_value(message.created_at)
    try:
        with sql.driver_transaction(driver, db):
            rows = driver.execute(sql.qmark(_context_and_send_limit_statement(context_query, limit_query, reply_query)),
                                  [*context_params, *limit_params, *reply_params]).fetchall()
            context = selectors.conversation_context_from_rows(rows, user_id=sender.pk)
            if context is None or context.device_active is False or context.existing_message_id is not None \
                    or context.blocked_by or context.blocking or rows[0][-1] is not None \
                    or (reply_to is not None and rows[0][selectors.CONTEXT_COLUMNS] in (None, Message.Kind.SYSTEM)):
                raise _NotTheCommonCase
            cursor = driver.execute(sql.qmark(statements["next_seq"]), [now, conversation_id])
            message.seq = cursor.fetchone()[0]
            cursor.close()  # an UPDATE ... RETURNING is complete only once its cursor is done
            # _message_fields()' order; what their get_db_prep_save gives for a text message.
            cursor = driver.execute(sql.qmark(statements["insert"]), [
                conversation_id, sender.pk, client_id, Message.Kind.TEXT.value, text, None, None, now, reply_to, False,
                message.seq])
            message.pk = cursor.fetchone()[0]
            cursor.close()
            seq = message.seq
            driver.execute(sql.qmark(statements["watermarks"]), [seq, seq, seq, seq, context.membership_id])
    except _NotTheCommonCase:
        return None
    _mark_saved(message, db)
    _announce_new(message, recipients=context.member_ids, origin_channel=origin_channel, context=context)
    _announce_read_by_author(author=sender, conversation_id=conversation_id, seq=message.seq,
                             read_seq_before=context.read_seq, member_ids=context.member_ids, context=context)
    return message, True


def _earlier_or_refusal(*, sender: User, conversation_id: int, client_id: str, device_id: int | None,
                        context: selectors.ConversationContext | None) -> Message | None:
    """What the context says of a send, the rate limit aside: raises the refusal, or returns the
    message this send retries (answered with the message made the first time, even if the sender
    has left since); None: it may be stored."""
    check_device(device_id=device_id, context=context)
    if context is None or context.existing_message_id is not None:
        existing = selectors.message_by_client_id(sender_id=sender.pk, client_id=client_id)
        if existing is not None:
            return _retried(existing, conversation_id)
    if context is None:
        raise not_a_member(user_id=sender.pk, conversation_id=conversation_id)
    _check_not_blocked(context)
    return None


def _context_and_send_limit(*, sender: User, conversation_id: int, client_id: str, device_id: int | None,
                            now, reply_to: int | None = None) -> tuple[selectors.ConversationContext | None,
                                                                       str | None, object]:
    """The conversation's context (`selectors.conversation_context`), for a reply the quoted
    message's kind (`selectors.reply_target_query`; None for none the sender can see, or no reply)
    and the sender's send limit (`selectors.send_limit_query`: when it was reached, as the database
    returns it; None while it is not), in one query: on SQLite a statement less per message than
    asking for each apart."""
    context_query, context_params = selectors.conversation_context_query(
        user_id=sender.pk, conversation_id=conversation_id, client_id=client_id, device_id=device_id)
    limit_query, limit_params = selectors.send_limit_query(
        sender_id=sender.pk, since=send_window_start(now), limit=settings.MESSENGER["SEND_RATE"])
    reply_query, reply_params = _reply_target_query(sender=sender, conversation_id=conversation_id, reply_to=reply_to)
    rows = sql.rows(_context_and_send_limit_statement(context_query, limit_query, reply_query),
                    [*context_params, *limit_params, *reply_params])
    if not rows:
        return None, None, None
    reply_kind = rows[0][selectors.CONTEXT_COLUMNS] if reply_to is not None else None
    return selectors.conversation_context_from_rows(rows, user_id=sender.pk), reply_kind, rows[0][-1]


def _reply_target_query(*, sender: User, conversation_id: int, reply_to: int | None) -> tuple[str | None, list]:
    if reply_to is None:
        return None, []
    return selectors.reply_target_query(user_id=sender.pk, conversation_id=conversation_id, seq=reply_to)


def _check_send_limit(*, sender: User, reached_at, now) -> None:
    """Refuse the send while the sender's limit is reached (`reached_at`, as the database returned
    it). Developer apps' bots have their own per-key and per-app limits instead."""
    if reached_at is not None and not sender.is_business:
        raise send_rate_refusal(reached_at=selectors.datetime_from_db(reached_at), now=now)


def _winner_of_race(*, sender: User, client_id: str, conversation_id: int, error: IntegrityError) -> Message:
    """After the unique (sender, client_id) refused a send: an identical retry stored it first."""
    existing = selectors.message_by_client_id(sender_id=sender.pk, client_id=client_id)
    if existing is None:
        raise error
    return _retried(existing, conversation_id)


def _check_and_store(*, sender: User, conversation_id: int, client_id: str, text: str,
                     origin_channel: str | None, device_id: int | None,
                     reply_to: int | None = None) -> tuple[Message, bool]:
    """send_message on PostgreSQL for a text message: every check and the store in one statement
    (`_check_and_store_statement`), committed on its own unless a transaction is open
    (`_transaction_for_store`), so a refused or failed send leaves nothing behind, seq included."""
    db = connections[DEFAULT_DB_ALIAS]
    for _ in range(STORE_ATTEMPTS):
        message, statement, params = _check_and_store_query(sender=sender, conversation_id=conversation_id,
                                                           client_id=client_id, text=text, device_id=device_id,
                                                           reply_to=reply_to)
        try:
            with _transaction_for_store():
                rows = sql.rows(statement, params)
        except IntegrityError as error:
            return _winner_of_race(sender=sender, client_id=client_id, conversation_id=conversation_id,
                                   error=error), False
        context = selectors.conversation_context_from_rows(rows, user_id=sender.pk)
        limit_reached_at, message.pk, message.seq = rows[0][-3:] if rows else (None, None, None)
        if message.pk is not None:
            break
        earlier = _earlier_or_refusal(sender=sender, conversation_id=conversation_id, client_id=client_id,
                                      device_id=device_id, context=context)
        if earlier is not None:
            return earlier, False
        _check_reply_target(reply_to=reply_to, kind=rows[0][selectors.CONTEXT_COLUMNS] if reply_to is not None else None,
                            conversation_id=conversation_id)
        _check_send_limit(sender=sender, reached_at=limit_reached_at, now=message.created_at)
        # Allowed by everything it read, yet not stored: the members changed (or the conversation
        # went) between its reading and the lock. Read again.
    else:
        raise _members_kept_changing(conversation_id)
    _mark_saved(message, db)
    _announce_new(message, recipients=context.member_ids, origin_channel=origin_channel, context=context)
    _announce_read_by_author(author=sender, conversation_id=conversation_id, seq=message.seq,
                             read_seq_before=context.read_seq, member_ids=context.member_ids, context=context)
    return message, True


def _text_message_and_checks(*, sender: User, conversation_id: int, client_id: str, text: str,
                             device_id: int | None, reply_to: int | None = None,
                             ) -> tuple[Message, tuple[str, list], tuple[str, list], tuple[str | None, list]]:
    """The unsaved text message, and the queries (with their parameters) that say whether it may
    be stored: the conversation's context (`selectors.conversation_context_query`), the sender's
    send limit (`selectors.send_limit_query`) and for a reply the message it quotes
    (`selectors.reply_target_query`; (None, []) for none), for the statements that store it only if
    they allow."""
    message = Message(conversation_id=conversation_id, sender=sender, client_id=client_id, kind=Message.Kind.TEXT,
                      text=text, created_at=timezone.now(), reply_to_seq=reply_to)
    context = selectors.conversation_context_query(
        user_id=sender.pk, conversation_id=conversation_id, client_id=client_id, device_id=device_id)
    limit = selectors.send_limit_query(
        sender_id=sender.pk, since=send_window_start(message.created_at), limit=settings.MESSENGER["SEND_RATE"])
    reply = _reply_target_query(sender=sender, conversation_id=conversation_id, reply_to=reply_to)
    return message, context, limit, reply


def _check_and_store_query(*, sender: User, conversation_id: int, client_id: str, text: str, device_id: int | None,
                           decline_bots: bool = False, reply_to: int | None = None) -> tuple[Message, str, list]:
    """The unsaved text message, and the statement (`_check_and_store_statement`) with its
    parameters that checks and stores it."""
    message, (context_query, context_params), (limit_query, limit_params), (reply_query, reply_params) = \
        _text_message_and_checks(sender=sender, conversation_id=conversation_id, client_id=client_id, text=text,
                                 device_id=device_id, reply_to=reply_to)
    now, values = _insert_params(message, connections[DEFAULT_DB_ALIAS])
    return message, _check_and_store_statement(context_query, limit_query, decline_bots, reply_query), \
        [*context_params, *limit_params, *reply_params, sender.pk, now, conversation_id, sender.pk, *values]


async def send_text_on_loop(*, sender: User, conversation_id: object, client_id: object, text: object = None,
                            media_id: object = None, origin_channel: str | None = None,
                            device_id: int | None = None, credential_checked: bool = False,
                            reply_to: object = None) -> tuple[Message, bool] | None:
    """`send_message`'s common case, from the event loop on PostgreSQL (storage/async_sql.py): a
    text message from a device, checked and stored in one statement and announced, with no hop to
    a database thread. None when the send is not that case: media, bad input, a refusal, a retry,
    a conversation with an app's bot (its receivers work in the database: developer_api), a reply
    that may not quote what it names, an error. `send_message` then answers it, as it answers every
    send without this path: the statement stored nothing, so it finds the conversation as this call
    did, or newer.

    The device is checked within the statement. Without one, the caller must have checked the
    credential itself (`credential_checked`: a browser session's, broker/services/sessions.py)."""
    if media_id is not None or (device_id is None and not credential_checked) or not async_sql.enabled():
        return None
    try:
        conversation_id = parse_id(conversation_id, field="conversation")
        client_id = _clean_client_id(client_id)
        text = clean_message_text(text)
        reply_to = clean_reply_to(reply_to)
    except BrokerError:
        return None
    message, statement, params = _check_and_store_query(sender=sender, conversation_id=conversation_id,
                                                        client_id=client_id, text=text, device_id=device_id,
                                                        decline_bots=True, reply_to=reply_to)
    try:
        rows = await async_sql.rows(statement, params)
    except psycopg.IntegrityError:  # an identical retry stored it first: send_message finds it
        return None
    except psycopg.Error:
        logger.warning("a send on the event loop failed; handing it to a database thread", exc_info=True)
        return None
    if not rows or rows[0][-2] is None:
        return None
    context = selectors.conversation_context_from_rows(rows, user_id=sender.pk)
    message.pk, message.seq = rows[0][-2:]
    _mark_saved(message, connections[DEFAULT_DB_ALIAS])
    with announcing_committed(asyncio.get_running_loop()):
        _announce_new(message, recipients=context.member_ids, origin_channel=origin_channel, context=context)
        _announce_read_by_author(author=sender, conversation_id=conversation_id, seq=message.seq,
                                 read_seq_before=context.read_seq, member_ids=context.member_ids, context=context)
    return message, True


def _transaction_for_store():
    """The transaction a send's writes need. On PostgreSQL they are one statement (`_store`), which
    is a transaction of its own when none is open: there Django's atomic block would only add two
    round trips, BEGIN before the statement and COMMIT after it (the COMMIT's flush to disk is the
    same either way). A failed statement then leaves nothing behind, seq included, as a rolled-back
    block would; `transaction.on_commit` runs its callbacks at once, after the write. Scaled out,
    round trips are most of a message's latency (docs/performance.md, change 24)."""
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor == "postgresql" and db.get_autocommit() and not db.in_atomic_block:
        return contextlib.nullcontext()
    return transaction.atomic()


def _retried(existing: Message, conversation_id: int) -> Message:
    if existing.conversation_id != conversation_id:
        raise Conflict("This client_id was already used for a message in another conversation.", field="client_id")
    return existing


def author_has_seen(*, author: User, conversation_id: int, seq: int) -> None:
    """Writing in a conversation (a message, or a change that makes a notice) means having seen it:
    the author's watermarks move to the new seq.

    If that reads messages of others that were still unread, the other members hear of it.
    """
    mine = Membership.objects.filter(conversation_id=conversation_id, user=author).values_list("id", "read_seq").first()
    if mine is None:  # the author has just left the conversation
        return
    membership_id, read_seq_before = mine
    _move_watermarks(membership_id=membership_id, seq=seq)
    _announce_read_by_author(author=author, conversation_id=conversation_id, seq=seq, read_seq_before=read_seq_before)


def _announce_read_by_author(*, author: User, conversation_id: int, seq: int, read_seq_before: int,
                             member_ids: list[int] | None = None,
                             context: selectors.ConversationContext | None = None) -> None:
    """After the author's watermarks moved to `seq`: if that read others' messages, say so.

    `read_seq_before` is the author's read watermark as the caller read it just before; watermarks
    only grow, so an older value can at worst announce a read that is true anyway.
    """
    if read_seq_before < seq - 1:
        announce_watermark(conversation_id=conversation_id, user_id=author.pk, seq=seq, status="read",
                           member_ids=member_ids, context=context)


def current_status(message: Message) -> str:
    """The message's status now ("sent", "delivered" or "read"), from the members' watermarks."""
    return events.Watermarks(list(selectors.members(conversation_id=message.conversation_id))).status_of(message)
