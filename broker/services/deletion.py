"""A sender deleting their own message for everyone, or a group's admin deleting a member's.

It is the operators' take-down (broker.services.moderation) asked for by the sender: the message
keeps its place and loses its text and media, and the members are told by a notice, so every
device of every member shows it deleted, live or when it next connects. Only for a while after
sending (`MESSENGER["DELETE_FOR_EVERYONE_SECONDS"]`): past that, the others have long read it and
a deletion would rewrite a settled conversation.
"""

from django.conf import settings
from django.db import transaction

from broker.errors import Forbidden
from broker.services.message_lookup import check_within, member_and_message_locked
from broker.services.moderation import remove_message
from broker.services.people import parse_id
from broker.services.receipts import notice_seen_by_its_author
from storage.models import Conversation, Membership, Message, User


def delete_for_everyone(*, user: User, conversation_id: object, seq: object) -> Message | None:
    """Remove the message at `seq` for every member: `user`'s own, or anyone's in a group `user` is
    an admin of. The notice, or None if it was removed already (deleting twice is no error)."""
    conversation_id = parse_id(conversation_id, field="conversation")
    seq = parse_id(seq, field="seq")
    with transaction.atomic():
        membership, message = member_and_message_locked(user=user, conversation_id=conversation_id, seq=seq)
        if message.sender_id != user.pk and not (_group_admin(membership) and message.sender_id is not None):
            raise Forbidden("You can delete only messages you sent (and, as a group's admin, its members').",
                            field="seq")
        if message.kind == Message.Kind.REMOVED:
            return None
        check_within(message, seconds=settings.MESSENGER["DELETE_FOR_EVERYONE_SECONDS"], done="deleted for everyone")
        notice = remove_message(
            message, notice_text=_notice_text(user, message),
            notice_event={"action": "message_deleted", "by": user.pk},
            mark={"action": "message_deleted", "by": user.pk},
        )
        notice_seen_by_its_author(membership_id=membership.pk, notice=notice)
    return notice


def _group_admin(membership: Membership) -> bool:
    return membership.role == Membership.Role.ADMIN and membership.conversation.kind == Conversation.Kind.GROUP


def _notice_text(user: User, message: Message) -> str:
    name = user.display_name or "Someone"
    if message.sender_id == user.pk:
        return f"{name} deleted a message"
    return f"{name} deleted a message as admin"
