"""Read queries over the stored data. Nothing here writes, and nothing knows about HTTP or events."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.db import DEFAULT_DB_ALIAS, connection
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from storage import sql
from storage.models import Block, Contact, Conversation, Departure, Device, Media, Membership, Message, Reaction, User


def user_by_phone(*, phone_number: str) -> User | None:
    return User.objects.filter(phone_number=phone_number, is_active=True).first()


def active_user(*, user_id: int) -> User | None:
    return User.objects.filter(pk=user_id, is_active=True).first()


def last_seen(*, user_id: int):
    return User.objects.filter(pk=user_id).values_list("last_seen", flat=True).first()


def known_among(*, user_id: int, other_ids: list[int]) -> set[int]:
    """Those of `other_ids` who are `user_id`'s contacts or in a conversation with them: two queries."""
    contacts = Contact.objects.filter(owner_id=user_id, contact_id__in=other_ids).values_list("contact_id", flat=True)
    known = set(contacts)
    rest = [other for other in other_ids if other not in known]
    if rest:
        known.update(Membership.objects.filter(
            user_id__in=rest, conversation__memberships__user_id=user_id).values_list("user_id", flat=True))
    return known


def device_is_active_query(*, device_id: int) -> tuple[str, list]:
    """`device_is_active`'s SQL and parameters: a row if the device is logged in and its user active."""
    return (f"SELECT 1 FROM {sql.table(Device)} d JOIN {sql.table(User)} u ON u.id = d.user_id "
            "WHERE d.id = %s AND u.is_active = %s", [device_id, True])


def device_is_active(*, device_id: int) -> bool:
    """The device is logged in and its user active (asked before every websocket frame, so in SQL)."""
    return bool(sql.rows(*device_is_active_query(device_id=device_id)))


def device_by_token_hash(*, token_hash: str) -> Device | None:
    # Every websocket connect and REST request: two raw-SQL lookups cost a fifth of one
    # select_related query built by the ORM (storage/sql.py).
    device = next(iter(Device.objects.raw(f"SELECT * FROM {sql.table(Device)} WHERE token_hash = %s", [token_hash])), None)
    if device is None:
        return None
    user = next(iter(User.objects.raw(f"SELECT * FROM {sql.table(User)} WHERE id = %s AND is_active = %s",
                                      [device.user_id, True])), None)
    if user is None:
        return None
    device.user = user
    return device


def contact_list(*, owner: User) -> QuerySet[Contact]:
    return Contact.objects.filter(owner=owner).select_related("contact").order_by("contact__display_name", "pk")


def is_blocked_by(*, blocker_id: int, blocked_id: int) -> bool:
    return Block.objects.filter(blocker_id=blocker_id, blocked_id=blocked_id).exists()


def blocked_user_ids(*, blocker_id: int) -> list[int]:
    """Everyone the user has blocked."""
    return list(Block.objects.filter(blocker_id=blocker_id).order_by("pk").values_list("blocked_id", flat=True))


def membership(*, user_id: int, conversation_id: int) -> Membership | None:
    return (
        Membership.objects.select_related("conversation")
        .filter(user_id=user_id, conversation_id=conversation_id)
        .first()
    )


def has_left(*, user_id: int, conversation_id: int) -> bool:
    """Whether the conversation is a group the user has left and keeps in their list (`Departure`)."""
    return Departure.objects.filter(user_id=user_id, conversation_id=conversation_id).exists()


def _former_members(departure: Departure, users: dict[int, User] | None = None) -> list[Membership]:
    """The others in the group when the user went, as they saw them (`Departure.members`): unsaved
    memberships, with their `user` when `users` has them (one gone altogether is left out)."""
    members = []
    for row in departure.members:
        if users is not None and row["user"] not in users:
            continue
        member = Membership(conversation_id=departure.conversation_id, user_id=row["user"], role=row["role"],
                            delivered_seq=row["delivered_seq"], read_seq=row["read_seq"])
        if users is not None:
            member.user = users[row["user"]]
        members.append(member)
    return members


@dataclass(frozen=True)
class ConversationContext:
    """What sending and receipts need to know about a conversation and one member of it."""

    kind: str
    last_seq: int
    member_ids: list[int]  # everyone in it, the member included
    business_member_ids: list[int]  # those of them that are developer apps' accounts
    membership_id: int  # the member's
    delivered_seq: int
    read_seq: int
    blocked_by: set[int]  # direct chats: the other member, if they have blocked the member
    blocking: set[int]  # direct chats: the other member, if the member has blocked them
    existing_message_id: int | None = None  # the member's message with the client_id asked about
    device_active: bool | None = None  # the device asked about is logged in and its user active
    members_version: int = 0  # Conversation.members_version as read with the members


def conversation_context(*, user_id: int, conversation_id: int, client_id: str | None = None,
                         device_id: int | None = None) -> ConversationContext | None:
    """In one query (it runs for every message and receipt, so in SQL; storage/sql.py says why),
    blocks between the two people of a direct chat included, given a `client_id` the id of the
    member's message that already has it, and given a `device_id` what `device_is_active` says of it
    (a websocket checks its credential before every frame: here that costs no query of its own);
    None if the user is not a member."""
    query, params = conversation_context_query(user_id=user_id, conversation_id=conversation_id,
                                               client_id=client_id, device_id=device_id)
    return conversation_context_from_rows(sql.rows(query, params), user_id=user_id)


CONTEXT_COLUMNS = 12  # what a row of conversation_context_query holds


def conversation_context_query(*, user_id: int, conversation_id: int, client_id: str | None = None,
                               device_id: int | None = None) -> tuple[str, list]:
    """The SQL of `conversation_context` and its parameters: one row per member, CONTEXT_COLUMNS
    named columns (`member_id` first), for a caller that runs it inside a larger statement."""
    block = sql.table(Block)
    existing = (f"(SELECT id FROM {sql.table(Message)} WHERE sender_id = %s AND client_id = %s)"
                if client_id is not None else "CAST(NULL AS bigint)")  # typed, for a statement that reads it
    device = (f"CASE WHEN m.user_id = %s THEN u.is_active = %s AND EXISTS "
              f"(SELECT 1 FROM {sql.table(Device)} d WHERE d.id = %s AND d.user_id = m.user_id) END"
              if device_id is not None else "CAST(NULL AS boolean)")
    query = (
        "SELECT m.user_id AS member_id, m.id AS membership_id, m.delivered_seq, m.read_seq, c.kind, c.last_seq, "
        f"c.kind = %s AND EXISTS (SELECT 1 FROM {block} b WHERE b.blocker_id = m.user_id AND b.blocked_id = %s) "
        "AS blocks_user, "
        f"c.kind = %s AND EXISTS (SELECT 1 FROM {block} b WHERE b.blocker_id = %s AND b.blocked_id = m.user_id) "
        "AS blocked_by_user, "
        f"u.is_business, CASE WHEN m.user_id = %s THEN {existing} END AS existing_message_id, "
        f"{device} AS device_active, c.members_version "
        f"FROM {sql.table(Membership)} m JOIN {sql.table(Conversation)} c ON c.id = m.conversation_id "
        f"JOIN {sql.table(User)} u ON u.id = m.user_id "
        "WHERE m.conversation_id = %s"
    )
    params = ([Conversation.Kind.DIRECT, user_id, Conversation.Kind.DIRECT, user_id, user_id]
              + ([user_id, client_id] if client_id is not None else [])
              + ([user_id, True, device_id] if device_id is not None else []) + [conversation_id])
    return query, params


def conversation_context_from_rows(rows: list[tuple], *, user_id: int) -> ConversationContext | None:
    """The context in rows that begin with conversation_context_query's columns."""
    ids, business, own, blocked_by, blocking = [], [], None, set(), set()
    for row in rows:
        ids.append(row[0])
        if row[8]:
            business.append(row[0])
        if row[0] == user_id:
            own = row
        else:
            if row[6]:
                blocked_by.add(row[0])
            if row[7]:
                blocking.add(row[0])
    if own is None:
        return None
    (_, membership_id, delivered_seq, read_seq, kind, last_seq, _, _, _, existing_message_id, device_active,
     members_version) = own[:CONTEXT_COLUMNS]
    return ConversationContext(kind=kind, last_seq=last_seq, member_ids=ids, business_member_ids=business,
                               membership_id=membership_id, delivered_seq=delivered_seq, read_seq=read_seq,
                               blocked_by=blocked_by, blocking=blocking, existing_message_id=existing_message_id,
                               device_active=None if device_active is None else bool(device_active),
                               members_version=members_version)


def reply_target_query(*, user_id: int, conversation_id: int, seq: int) -> tuple[str, list]:
    """SQL for the kind of the message at `seq` in the conversation, if `user_id` is a member who can
    see it there (above their `joined_after_seq`); no row otherwise. What a reply may quote; a send
    runs it inside its own statement (broker.services.send), on the unique indexes of (conversation,
    seq) and (conversation, user)."""
    return (f"SELECT q.kind FROM {sql.table(Message)} q JOIN {sql.table(Membership)} qm "
            "ON qm.conversation_id = q.conversation_id AND qm.user_id = %s "
            "WHERE q.conversation_id = %s AND q.seq = %s AND q.seq > qm.joined_after_seq",
            [user_id, conversation_id, seq])


def send_limit_query(*, sender_id: int, since: datetime, limit: int) -> tuple[str, list]:
    """SQL for when the sender's `limit`-th newest message after `since` was written: the one that
    keeps a sliding window's limit reached (no row while fewer were sent), and its parameters."""
    return (f"SELECT created_at FROM {sql.table(Message)} WHERE sender_id = %s AND created_at > %s "
            "ORDER BY created_at DESC LIMIT 1 OFFSET %s",
            [sender_id, connection.ops.adapt_datetimefield_value(since), max(limit - 1, 0)])  # a limit below 1 is taken as 1


def datetime_from_db(value) -> datetime:
    """A datetime as raw SQL returns it (SQLite: text in the connection's time zone), aware."""
    if isinstance(value, str):
        value = parse_datetime(value)
    return timezone.make_aware(value, connection.timezone) if timezone.is_naive(value) else value


@dataclass(frozen=True)
class TypingAudience:
    """Who may see a member typing in a conversation, and the device the notice came from."""

    listener_ids: list[int]  # the other members, less anyone with a block either way with the typist
    device_active: bool | None = None  # as ConversationContext's


def typing_audience_query(*, user_id: int, conversation_id: int, device_id: int | None = None) -> tuple[str, list]:
    """One row per member: (member_id, hidden, device_active). A block hides typing in every kind of
    conversation (as it hides presence): someone who cannot message you, or whom you blocked, is
    not seen typing in a group either. Given `device_id`, what `device_is_active` says of it, on
    the typist's row."""
    block = sql.table(Block)
    device = (f"CASE WHEN m.user_id = %s THEN EXISTS (SELECT 1 FROM {sql.table(Device)} d "
              f"JOIN {sql.table(User)} u ON u.id = d.user_id WHERE d.id = %s AND d.user_id = m.user_id "
              "AND u.is_active = %s) END" if device_id is not None else "CAST(NULL AS boolean)")
    return (
        f"SELECT m.user_id, m.user_id IN (SELECT b.blocked_id FROM {block} b WHERE b.blocker_id = %s "
        f"UNION ALL SELECT b.blocker_id FROM {block} b WHERE b.blocked_id = %s) AS hidden, {device} "
        f"FROM {sql.table(Membership)} m WHERE m.conversation_id = %s",
        [user_id, user_id, *([user_id, device_id, True] if device_id is not None else []), conversation_id],
    )


def typing_audience_from_rows(rows: list[tuple], *, user_id: int) -> TypingAudience | None:
    """The audience in typing_audience_query's rows; None if the user is not a member."""
    own = next((row for row in rows if row[0] == user_id), None)
    if own is None:
        return None
    return TypingAudience(listener_ids=[row[0] for row in rows if row[0] != user_id and not row[1]],
                          device_active=None if own[2] is None else bool(own[2]))


def typing_audience(*, user_id: int, conversation_id: int, device_id: int | None = None) -> TypingAudience | None:
    """In one query: typing notices are sent every few seconds while someone writes."""
    return typing_audience_from_rows(sql.rows(*typing_audience_query(
        user_id=user_id, conversation_id=conversation_id, device_id=device_id)), user_id=user_id)


def member_ids(*, conversation_id: int) -> list[int]:
    return list(Membership.objects.filter(conversation_id=conversation_id).values_list("user_id", flat=True))


def members(*, conversation_id: int) -> QuerySet[Membership]:
    return Membership.objects.filter(conversation_id=conversation_id).select_related("user").order_by("joined_at", "pk")


def presence_audience_query(*, user_id: int) -> tuple[str, list]:
    """Who sees the user's presence: everyone they share a direct chat with, less blocks either way.
    One statement, as it runs at every connect and disconnect; a row per user id."""
    return (
        f"SELECT DISTINCT peer.user_id FROM {sql.table(Membership)} own "
        f"JOIN {sql.table(Conversation)} c ON c.id = own.conversation_id "
        f"JOIN {sql.table(Membership)} peer ON peer.conversation_id = own.conversation_id AND peer.user_id <> own.user_id "
        f"WHERE own.user_id = %s AND c.kind = %s AND NOT EXISTS (SELECT 1 FROM {sql.table(Block)} b "
        "WHERE (b.blocker_id = own.user_id AND b.blocked_id = peer.user_id) "
        "OR (b.blocker_id = peer.user_id AND b.blocked_id = own.user_id))",
        [user_id, Conversation.Kind.DIRECT],
    )


def profile_audience_ids(*, user_id: int) -> list[int]:
    """Who shows this user's name, about and photo, to be told when they change: the people in a
    conversation with them, those who saved them as a contact, and the user themselves (their other
    devices). Not those who keep a group they have left that lists the user (`profiles_seen_by`):
    finding them would read every departure's members, unindexed JSON, at each change; they see it
    at their next fetch of that group."""
    fellows = Membership.objects.filter(conversation__memberships__user_id=user_id).values_list("user_id", flat=True)
    savers = Contact.objects.filter(contact_id=user_id).values_list("owner_id", flat=True)
    return sorted({user_id, *fellows, *savers})


def profiles_seen_by(*, user_id: int) -> QuerySet[User]:
    """Whose name, about and photo this user is shown: the other side of `profile_audience_ids`
    (themselves, the people they saved as contacts, the people in a conversation with them), and
    the others in a group they have left as it was when they went, whom its listing shows
    (`conversation_summaries`, `Departure.members`) until they delete it."""
    # Correlated EXISTS, each a probe of a unique index (owner, contact), (user, conversation) and
    # (conversation, user) for the person asked about, however many people the user knows.
    return User.objects.filter(
        Q(pk=user_id)
        | Exists(Contact.objects.filter(owner_id=user_id, contact_id=OuterRef("pk")))
        | Exists(Membership.objects.filter(user_id=OuterRef("pk"), conversation__memberships__user_id=user_id))
        | Q(pk__in=_former_fellow_ids(user_id))
    )


def _former_fellow_ids(user_id: int) -> RawSQL:
    """The ids in `Departure.members` of the user's departures, as a subquery: those rows are JSON,
    which the ORM cannot look into portably. It reads the user's departures only (unique_departure
    starts with the user), however many groups others have left."""
    departures = sql.table(Departure)
    if connection.vendor == "postgresql":
        statement = (f"SELECT (m.value ->> 'user')::bigint FROM {departures} d "
                     "CROSS JOIN LATERAL jsonb_array_elements(d.members) m WHERE d.user_id = %s")
    else:
        statement = (f"SELECT json_extract(m.value, '$.user') FROM {departures} d, json_each(d.members) m "
                     "WHERE d.user_id = %s")
    return RawSQL(statement, [user_id])


def presence_audience_ids(*, user_id: int) -> list[int]:
    return [peer for (peer,) in sql.rows(*presence_audience_query(user_id=user_id))]


@dataclass(frozen=True)
class ConversationSummary:
    conversation: Conversation
    membership: Membership | None  # the user's; None in a group they have left (`departure`)
    members: list[Membership]  # of a group they have left: the others in it when they went
    last_message: Message | None
    departure: Departure | None = None
    # Of the messages above read_seq, the notices clients show only as a change to another message.
    hidden_unread: int = 0

    @property
    def left(self) -> bool:
        return self.departure is not None

    @property
    def title(self) -> str:
        return self.departure.title if self.departure else self.conversation.title

    @property
    def last_seq(self) -> int:
        return self.departure.through_seq if self.departure else self.conversation.last_seq

    @property
    def last_activity_at(self) -> datetime:
        return self.departure.left_at if self.departure else self.conversation.last_activity_at

    @property
    def pinned_at(self) -> datetime | None:
        return self.membership.pinned_at if self.membership else None

    @property
    def role(self) -> str | None:
        return None if self.departure else self.membership.role

    @property
    def delivered_seq(self) -> int:
        return (self.departure or self.membership).delivered_seq

    @property
    def read_seq(self) -> int:
        return (self.departure or self.membership).read_seq

    @property
    def unread_count(self) -> int:
        # Sending moves the sender's own read watermark to the new message, so everything above
        # read_seq was written by someone else (or is a system message): the count is exact once
        # the notices of edits and deletions, which no one sees as a message, are left out.
        return max(0, self.last_seq - self.read_seq - self.hidden_unread)


def _hidden_unread(*, through_departure: bool = False) -> Coalesce:
    """Per row of memberships (or departures), the hidden notices above its read_seq: a correlated
    count, by the partial index of system messages, in the row's own query."""
    notices = Message.objects.filter(
        conversation_id=OuterRef("conversation_id"), seq__gt=OuterRef("read_seq"), kind=Message.Kind.SYSTEM,
        event__action__in=Message.HIDDEN_NOTICE_ACTIONS)
    if through_departure:
        notices = notices.filter(seq__lte=OuterRef("through_seq"))
    counted = notices.order_by().values("conversation_id").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted), 0)


def conversation_summaries(*, user: User, conversation_id: int | None = None) -> list[ConversationSummary]:
    """The user's conversations, those they pinned first (latest pinned at the top), then newest activity
    first, with members and last message, in 4 queries
    (5 when a last message carries media, 6 when the user has left groups): the groups they have
    left among them, as they last saw them, sorted by the notice of their going."""
    own = (Membership.objects.filter(user=user).select_related("conversation")
           .annotate(hidden_unread=_hidden_unread()))
    departures = (Departure.objects.filter(user=user).select_related("conversation")
                  .annotate(hidden_unread=_hidden_unread(through_departure=True)))
    if conversation_id is not None:
        own = own.filter(conversation_id=conversation_id)
        departures = departures.filter(conversation_id=conversation_id)
    own = list(own)
    ids = [m.conversation_id for m in own]
    # Never both for one conversation (adding someone back ends their departure), nor shown twice.
    member_of = set(ids)
    departures = [d for d in departures if d.conversation_id not in member_of]
    if not own and not departures:
        return []
    members_by_conversation: dict[int, list[Membership]] = {cid: [] for cid in ids}
    if ids:
        for member in (Membership.objects.filter(conversation_id__in=ids).select_related("user")
                       .order_by("joined_at", "pk")):
            members_by_conversation[member.conversation_id].append(member)
    if departures:
        users = User.objects.in_bulk({row["user"] for d in departures for row in d.members})
        for departure in departures:
            members_by_conversation[departure.conversation_id] = _former_members(departure, users)
    last_messages = {msg.conversation_id: msg for msg in _messages_at(
        [(m.conversation_id, m.conversation.last_seq) for m in own if m.conversation.last_seq > m.joined_after_seq]
        + [(d.conversation_id, d.through_seq) for d in departures])}
    summaries = [
        ConversationSummary(conversation=m.conversation, membership=m, members=members_by_conversation[m.conversation_id],
                            last_message=last_messages.get(m.conversation_id), hidden_unread=m.hidden_unread)
        for m in own
    ] + [
        ConversationSummary(conversation=d.conversation, membership=None, departure=d,
                            members=members_by_conversation[d.conversation_id],
                            last_message=last_messages.get(d.conversation_id), hidden_unread=d.hidden_unread)
        for d in departures
    ]
    # Pinned first, the latest pinned at the top; then the rest by their newest activity.
    summaries.sort(key=lambda s: (s.pinned_at is not None, s.pinned_at or s.last_activity_at, s.last_activity_at,
                                  s.conversation.pk), reverse=True)
    return summaries


def history_page(
    *, membership: Membership, before_seq: int | None = None, after_seq: int | None = None, limit: int = 50,
    through_seq: int | None = None, reactions_until: datetime | None = None,
) -> tuple[list[Message], bool]:
    """A page of messages the member may see, in seq order, and whether more lie beyond it.

    With `after_seq`, the page starts just after it (catching up forward); otherwise it ends just
    before `before_seq` (or at the newest message, or at `through_seq`: the last a former member
    may see) and the caller pages backwards.

    Hand-written (`raw`): building this query through the ORM took longer than running it on
    1,000,000 stored messages (docs/performance.md, change 44). A page's media, rare, come in a
    second query, only when there are some; its reactions in another, when it has people's messages
    (those made after `reactions_until` left out).
    """
    after = membership.joined_after_seq if after_seq is None else max(after_seq, membership.joined_after_seq)
    where, params = ["conversation_id = %s", "seq > %s"], [membership.conversation_id, after]
    if before_seq is not None:
        where.append("seq < %s")
        params.append(before_seq)
    if through_seq is not None:
        where.append("seq <= %s")
        params.append(through_seq)
    newest_first = after_seq is None
    page = list(Message.objects.raw(
        f"SELECT * FROM {sql.table(Message)} WHERE {' AND '.join(where)} "
        f"ORDER BY seq {'DESC' if newest_first else 'ASC'} LIMIT %s", [*params, limit + 1]))
    has_more = len(page) > limit
    page = page[:limit]
    if newest_first:
        page.reverse()
    _attach_media(page)
    attach_reactions(page, until=reactions_until)
    return page, has_more


def attach_reactions(messages: list[Message], *, until: datetime | None = None) -> None:
    """Load the reactions to these messages (`Message.loaded_reactions`) in one query, asked only if
    some of them are people's messages: notices and removed messages have none. `until`: leave out
    those made after it (in a group someone has left, what was done after they went is not theirs)."""
    ids = [m.pk for m in messages if m.kind == Message.Kind.TEXT]
    if not ids:
        return
    # Hand-written, as the page's own query is (storage/sql.py): every history page with people's
    # messages runs it, and through the ORM building a statement costs more than running it (change
    # 44 measured that of the page's query).
    marks = ", ".join(["%s"] * len(ids))
    statement = f"SELECT message_id, user_id, emoji FROM {sql.table(Reaction)} WHERE message_id IN ({marks})"
    params: list = list(ids)
    if until is not None:
        statement += " AND created_at <= %s"
        params.append(connection.ops.adapt_datetimefield_value(until))
    by_message: dict[int, list[tuple[int, str]]] = {}
    for message_id, user_id, emoji in sql.rows(statement + " ORDER BY id", params):
        by_message.setdefault(message_id, []).append((user_id, emoji))
    for message in messages:
        message.loaded_reactions = tuple(by_message.get(message.pk, ()))


def _attach_media(messages: list[Message]) -> None:
    """The media of those messages that carry some, in one query, and only if any do (most don't)."""
    media_ids = {m.media_id for m in messages if m.media_id}
    if media_ids:
        media = Media.objects.in_bulk(media_ids)
        gone = [m for m in messages if m.media_id and m.media_id not in media]
        if gone:
            # Removed between the two reads (deleted for everyone, or taken down), its media released
            # meanwhile (a message holds on to its media, so nothing else lets it go): shown as it is now.
            now = Message.objects.in_bulk([m.pk for m in gone])
            for message in gone:
                current = now.get(message.pk) or Message(kind=Message.Kind.REMOVED)  # or gone with its chat
                message.kind, message.text, message.event, message.media_id = (
                    current.kind, current.text, current.event, None)
        for message in messages:
            if message.media_id:
                message.media = media[message.media_id]


def _messages_at(keys: list[tuple[int, int]]) -> list[Message]:
    """The messages at these (conversation, seq) places, with their media: one statement on the
    unique (conversation, seq) index. Hand-written because the ORM's way, an OR of one condition
    per place, took 4 ms to build for 25 conversations and 54 ms for 1,000 (docs/performance.md,
    change 46)."""
    if not keys:
        return []
    values = ", ".join(["(%s, %s)"] * len(keys))
    messages = list(Message.objects.raw(
        f"SELECT * FROM {sql.table(Message)} WHERE (conversation_id, seq) IN (VALUES {values})",
        [part for key in keys for part in key]))
    _attach_media(messages)
    return messages


@dataclass(frozen=True)
class MemberHistoryPage:
    messages: list[Message]
    has_more: bool
    members: list[Membership]  # everyone in the conversation, for the messages' statuses


def member_history_page(
    *, user_id: int, conversation_id: int, before_seq: int | None = None, after_seq: int | None = None,
    limit: int = 50,
) -> MemberHistoryPage | None:
    """`history_page` for a user, with the conversation's members; None if they are not in it and
    it is no group they have left. Of a group they have left, the page ends at the notice of their
    going, and its members are those it had then, as they saw them (their statuses stop there).

    The members come in one hand-written statement (storage/sql.py), the user's own row among
    them, with what a page needs of each (who, where their history starts, their watermarks);
    the role and join time are loaded only if asked for."""
    fields = ["id", "conversation_id", "user_id", "joined_after_seq", "delivered_seq", "read_seq"]
    rows = sql.rows(f"SELECT {', '.join(fields)} FROM {sql.table(Membership)} WHERE conversation_id = %s "
                    "ORDER BY id", [conversation_id])
    members = [Membership.from_db(DEFAULT_DB_ALIAS, fields, row) for row in rows]
    member = next((m for m in members if m.user_id == user_id), None)
    if member is None:
        departure = Departure.objects.filter(user_id=user_id, conversation_id=conversation_id).first()
        if departure is None:
            return None
        former = Membership(conversation_id=conversation_id, user_id=user_id, joined_after_seq=departure.joined_after_seq)
        messages, has_more = history_page(membership=former, before_seq=before_seq, after_seq=after_seq, limit=limit,
                                          through_seq=departure.through_seq, reactions_until=departure.left_at)
        return MemberHistoryPage(messages=messages, has_more=has_more, members=_former_members(departure))
    messages, has_more = history_page(membership=member, before_seq=before_seq, after_seq=after_seq, limit=limit)
    return MemberHistoryPage(messages=messages, has_more=has_more, members=members)


def search_history(*, user_id: int, conversation_id: int, query: str, before_seq: int | None = None,
                   limit: int = 20) -> MemberHistoryPage | None:
    """The messages of the conversation the user can see (as `member_history_page`) whose text, or
    caption, contains `query` in any case; newest first, below `before_seq` when given. None if
    they are not in it and it is no group they have left.

    No index serves the match: it reads the conversation's messages newest first, by
    unique_message_seq, until it has a page, so a search costs what the history it goes through
    costs (docs/performance.md has no target for it)."""
    member = Membership.objects.filter(user_id=user_id, conversation_id=conversation_id).first()
    departure = None
    if member is None:
        departure = Departure.objects.filter(user_id=user_id, conversation_id=conversation_id).first()
        if departure is None:
            return None
    found = Message.objects.filter(conversation_id=conversation_id, kind=Message.Kind.TEXT, text__icontains=query,
                                   seq__gt=(member or departure).joined_after_seq)
    if departure is not None:
        found = found.filter(seq__lte=departure.through_seq)
    if before_seq is not None:
        found = found.filter(seq__lt=before_seq)
    page = list(found.order_by("-seq")[:limit + 1])
    _attach_media(page[:limit])
    attach_reactions(page[:limit], until=departure.left_at if departure else None)
    members = _former_members(departure) if departure else list(members_for_statuses(conversation_id=conversation_id))
    return MemberHistoryPage(messages=page[:limit], has_more=len(page) > limit, members=members)


def members_for_statuses(*, conversation_id: int) -> QuerySet[Membership]:
    """The conversation's members with what a message's status needs (events.Watermarks)."""
    return Membership.objects.filter(conversation_id=conversation_id).only(
        "id", "conversation_id", "user_id", "joined_after_seq", "delivered_seq", "read_seq").order_by("id")


def behind_conversations_query(*, user_id: int) -> tuple[str, list]:
    """The user's conversations with messages above their delivered watermark, and the groups they
    left or were removed from before receiving everything up to the notice of it (`Departure`): a
    row (conversation id, delivered seq, the last seq to send or null for all) each. Asked at every
    connect, and usually answered "nothing": one statement. The groups left and fully received are
    not read at all (the partial index departure_undelivered holds only the others)."""
    return (f"SELECT m.conversation_id, m.delivered_seq, NULL FROM {sql.table(Membership)} m "
            f"JOIN {sql.table(Conversation)} c ON c.id = m.conversation_id "
            "WHERE m.user_id = %s AND m.delivered_seq < c.last_seq "
            f"UNION ALL SELECT d.conversation_id, d.delivered_seq, d.through_seq FROM {sql.table(Departure)} d "
            "WHERE d.user_id = %s AND d.delivered_seq < d.through_seq ORDER BY 1, 2", [user_id, user_id])


def has_undelivered_messages(*, user_id: int) -> bool:
    return bool(sql.rows(*behind_conversations_query(user_id=user_id)))


def undelivered_messages(*, user: User, batch_size: int = 500) -> Iterator[Message]:
    """Every message above the user's delivered watermark, conversation by conversation, in seq
    order; of a conversation they have left, those up to the notice of it."""
    for conversation_id, after, through in sql.rows(*behind_conversations_query(user_id=user.pk)):
        left_at = None if through is None else (
            Departure.objects.filter(user=user, conversation_id=conversation_id).values_list("left_at", flat=True).first())
        while True:
            messages = Message.objects.filter(conversation_id=conversation_id, seq__gt=after)
            if through is not None:
                messages = messages.filter(seq__lte=through)
            batch = list(messages.select_related("media").order_by("seq")[:batch_size])
            # A backlog's messages may have been reacted to before this device got them.
            attach_reactions(batch, until=left_at)
            yield from batch
            if len(batch) < batch_size:
                break
            after = batch[-1].seq


def messages_in_range(*, conversation_id: int, after_seq: int, up_to_seq: int) -> QuerySet[Message]:
    return Message.objects.filter(conversation_id=conversation_id, seq__gt=after_seq, seq__lte=up_to_seq).order_by("seq")


def message_by_client_id(*, sender_id: int, client_id: str) -> Message | None:
    # Asked before every send and almost always answered "none" (storage/sql.py says why in SQL);
    # the ORM is left for the rare retry that finds one.
    rows = sql.rows(f"SELECT id FROM {sql.table(Message)} WHERE sender_id = %s AND client_id = %s", [sender_id, client_id])
    return Message.objects.select_related("media").get(pk=rows[0][0]) if rows else None
