"""Pinning a chat to the top of one's conversation list, on every device of one's own: at most
MAX_PINNED at once (as WhatsApp allows three), the latest pinned at the top."""

from django.db import transaction
from django.utils import timezone

from broker import events
from broker.errors import Conflict
from broker.publish import publish_on_commit, user_group
from broker.services.people import not_a_member, parse_id
from storage.models import Membership, User

MAX_PINNED = 3


def pin(*, user: User, conversation_id: object) -> None:
    """Pin the conversation (again: it stays where it is)."""
    conversation_id = parse_id(conversation_id, field="conversation")
    with transaction.atomic():
        # The user's memberships, locked: two pins at once cannot both take the last place.
        mine = list(Membership.objects.select_for_update().filter(user=user).only("id", "conversation_id", "pinned_at"))
        member = next((m for m in mine if m.conversation_id == conversation_id), None)
        if member is None:
            raise not_a_member(user_id=user.pk, conversation_id=conversation_id)
        if member.pinned_at is not None:
            return
        if sum(m.pinned_at is not None for m in mine) >= MAX_PINNED:
            raise Conflict(f"You can pin up to {MAX_PINNED} chats: unpin one first.", field="conversation")
        member.pinned_at = timezone.now()
        member.save(update_fields=["pinned_at"])
        _announce(user=user, conversation_id=conversation_id, pinned_at=member.pinned_at)


def unpin(*, user: User, conversation_id: object) -> None:
    conversation_id = parse_id(conversation_id, field="conversation")
    member = Membership.objects.filter(user=user, conversation_id=conversation_id).only("id", "pinned_at").first()
    if member is None:
        raise not_a_member(user_id=user.pk, conversation_id=conversation_id)
    if member.pinned_at is None:
        return
    Membership.objects.filter(pk=member.pk).update(pinned_at=None)
    _announce(user=user, conversation_id=conversation_id, pinned_at=None)


def _announce(*, user: User, conversation_id: int, pinned_at) -> None:
    # Their other devices move the chat at once.
    publish_on_commit([user_group(user.pk)], events.conversation_pinned(conversation_id=conversation_id,
                                                                        pinned_at=pinned_at))
