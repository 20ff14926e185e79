"""Muting a chat: its messages still arrive and count as unread, but the member's devices do not
call for attention about it (no notification, no sound) until the mute ends. Kept on the server,
per membership, so that every device of theirs, and one they log in on later, keeps it."""

from datetime import datetime, timedelta

from django.utils import timezone

from broker import events
from broker.errors import InvalidInput
from broker.publish import publish_on_commit, user_group
from broker.services.people import not_a_member, parse_id
from storage.models import Membership, User

SHORTEST_SECONDS = 60
LONGEST_SECONDS = 366 * 24 * 3600  # longer than a year is "until I unmute it" (a duration of null)


def _until(duration: object, now: datetime) -> datetime:
    if duration is None:
        return Membership.MUTED_FOR_GOOD
    if isinstance(duration, bool) or not isinstance(duration, int) or not (
            SHORTEST_SECONDS <= duration <= LONGEST_SECONDS):
        raise InvalidInput(
            f"duration must be a number of seconds from {SHORTEST_SECONDS} to {LONGEST_SECONDS}, "
            "or null to mute until you unmute it.", field="duration")
    return now + timedelta(seconds=duration)


def mute(*, user: User, conversation_id: object, duration: object, now: datetime | None = None) -> datetime:
    """Mute the conversation for `duration` seconds, or until unmuted (None); a mute already there
    is replaced. Returns when it ends (Membership.MUTED_FOR_GOOD: never by itself)."""
    conversation_id = parse_id(conversation_id, field="conversation")
    until = _until(duration, now or timezone.now())
    _set(user=user, conversation_id=conversation_id, muted_until=until)
    return until


def unmute(*, user: User, conversation_id: object) -> None:
    conversation_id = parse_id(conversation_id, field="conversation")
    _set(user=user, conversation_id=conversation_id, muted_until=None)


def _set(*, user: User, conversation_id: int, muted_until: datetime | None) -> None:
    if not Membership.objects.filter(user=user, conversation_id=conversation_id).update(muted_until=muted_until):
        raise not_a_member(user_id=user.pk, conversation_id=conversation_id)
    # Their other devices stop (or start) notifying at once.
    publish_on_commit([user_group(user.pk)], events.conversation_muted(
        conversation_id=conversation_id, muted_until=muted_until))
