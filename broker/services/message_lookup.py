"""What changing a message someone sent starts with (deleting it for everyone, editing it): the
asker's membership and the message at a seq they can see, locked, and the time limit after sending."""

from datetime import timedelta

from django.utils import timezone

from broker.errors import Forbidden, NotFound
from broker.services.people import not_a_member, parse_id
from broker.text import duration_text
from storage.models import Membership, Message, User


def member_and_message_locked(*, user: User, conversation_id: object, seq: object) -> tuple[Membership, Message]:
    """`user`'s membership (with its conversation) and the message at `seq` locked for the caller's
    transaction: 403/404 on `conversation` if they are not in it, 404 on `seq` if there is none
    there for them (history before they joined is not theirs)."""
    conversation_id = parse_id(conversation_id, field="conversation")
    seq = parse_id(seq, field="seq")
    membership = (Membership.objects.filter(conversation_id=conversation_id, user=user)
                  .select_related("conversation").only("pk", "joined_after_seq", "role", "conversation__kind")
                  .first())
    if membership is None:
        raise not_a_member(user_id=user.pk, conversation_id=conversation_id)
    # Its media (a caption's) for an edit's answer; the lock is the message's alone.
    message = (Message.objects.select_related("media").select_for_update(of=("self",))
               .filter(conversation_id=conversation_id, seq=seq, seq__gt=membership.joined_after_seq).first())
    if message is None:
        raise NotFound(f"There is no message {seq} in conversation {conversation_id}.", field="seq")
    return membership, message


def check_within(message: Message, *, seconds: int, done: str) -> None:
    """Forbidden on `seq` once `seconds` have passed since the message was sent: it can be `done`
    ("edited") only until then."""
    if timezone.now() - message.created_at > timedelta(seconds=seconds):
        raise Forbidden(f"A message can be {done} only within {duration_text(seconds)} of sending it.", field="seq")
