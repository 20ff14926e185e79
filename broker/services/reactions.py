"""Reacting to a message with an emoji, as in WhatsApp: one reaction per person per message, which
reacting again replaces and its author may take away. Every member's devices are told at once
(`message.reaction`); a device that was away finds them in the history, where each message carries
its reactions. Only people's messages take reactions: not notices, and not a message deleted for
everyone or taken down, which loses those it had (broker.services.moderation).
"""

import emoji as emoji_data
from django.db import transaction
from django.utils import timezone

from broker import events
from broker.errors import Blocked, Forbidden, InvalidInput
from broker.publish import publish_on_commit, user_group
from broker.services.message_lookup import member_and_message_locked
from broker.services.people import parse_id
from storage import selectors
from storage.models import Conversation, Membership, Message, Reaction, User

# The longest emoji (a family or a couple with skin tones, joined by zero-width joiners) is 10
# code points; this leaves room for Unicode's next ones and none for a text posing as one.
EMOJI_MAX_LENGTH = 32


def clean_emoji(value: object) -> str:
    """One emoji, as the `emoji` package's copy of Unicode's emoji data knows them: a single
    grapheme (skin tones, flags, keycaps and joined sequences included), nothing around it."""
    if not isinstance(value, str) or not value or len(value) > EMOJI_MAX_LENGTH or not emoji_data.is_emoji(value):
        raise InvalidInput("emoji must be a single emoji, such as \"👍\".", field="emoji")
    return value


def react(*, user: User, conversation_id: object, seq: object, emoji: object) -> Message:
    """`user` reacts to the message at `seq` with `emoji`, replacing a reaction of theirs to it. The
    message, with its reactions loaded. The same emoji again changes nothing and tells nobody."""
    conversation_id = parse_id(conversation_id, field="conversation")
    seq = parse_id(seq, field="seq")
    emoji = clean_emoji(emoji)
    with transaction.atomic():
        # Locked: a deletion for everyone committing meanwhile would otherwise leave this reaction
        # behind on a message it has just emptied.
        membership, message = member_and_message_locked(user=user, conversation_id=conversation_id, seq=seq)
        if message.kind == Message.Kind.REMOVED:
            raise Forbidden("This message was deleted; it cannot be reacted to.", field="seq")
        if message.kind != Message.Kind.TEXT:
            raise Forbidden("Only people's messages can be reacted to.", field="seq")
        members = _audience(membership, user)
        mine = Reaction.objects.filter(message=message, user=user).first()
        if mine is None:
            Reaction.objects.create(message=message, user=user, emoji=emoji)
        elif mine.emoji != emoji:
            # Replaced in place: it keeps its place among the message's reactions (by id).
            Reaction.objects.filter(pk=mine.pk).update(emoji=emoji, created_at=timezone.now())
        if mine is None or mine.emoji != emoji:
            _announce(members, message, user, emoji)
        selectors.attach_reactions([message])
    return message


def unreact(*, user: User, conversation_id: object, seq: object) -> None:
    """`user` takes away their reaction to the message at `seq`; none there is no error."""
    conversation_id = parse_id(conversation_id, field="conversation")
    seq = parse_id(seq, field="seq")
    with transaction.atomic():
        membership, message = member_and_message_locked(user=user, conversation_id=conversation_id, seq=seq)
        if Reaction.objects.filter(message=message, user=user).exists():
            members = _audience(membership, user)
            Reaction.objects.filter(message=message, user=user).delete()
            _announce(members, message, user, None)


def _audience(membership: Membership, user: User) -> list[int]:
    """The members to tell; in a direct chat, refused while either of the two has blocked the other
    (a reaction is a message of a kind)."""
    members = selectors.member_ids(conversation_id=membership.conversation.pk)
    if membership.conversation.kind == Conversation.Kind.DIRECT:
        for other in members:
            if other == user.pk:
                continue
            if selectors.is_blocked_by(blocker_id=other, blocked_id=user.pk):
                raise Blocked("This person has blocked you; your reaction was not sent.", field="conversation")
            if selectors.is_blocked_by(blocker_id=user.pk, blocked_id=other):
                raise Blocked("You have blocked this person; unblock them to react.", field="conversation")
    return members


def _announce(members: list[int], message: Message, user: User, emoji: str | None) -> None:
    publish_on_commit([user_group(member) for member in members], events.message_reaction(
        conversation_id=message.conversation_id, seq=message.seq, user_id=user.pk, emoji=emoji))
