"""Forwarding: sending on, to another chat, a message one can see in one's own, as a new message of
one's own marked `forwarded`. Its text (a media message's caption) and media are copied, not
referenced: the copy stays as it was sent whatever becomes of the original (edited, deleted)."""

from broker.errors import InvalidInput, NotFound
from broker.services import send
from broker.services.people import parse_id
from storage import selectors
from storage.models import Message, User


def forward_message(*, sender: User, conversation_id: object, client_id: object, source: object,
                    device_id: int | None = None) -> tuple[Message, bool]:
    """Send to `conversation_id` a copy of the message `source` names, `{"conversation", "seq"}`:
    a person's message the sender can see (in a conversation they are in, or in a group they left,
    up to their going), not a system notice nor one deleted or taken down. (message, created), as
    `send.send_message`, whose checks (membership, blocks, limits, client_id) the copy passes too."""
    original = _original(sender=sender, source=source)
    return send.send_message(sender=sender, conversation_id=conversation_id, client_id=client_id,
                             text=original.text, media_id=original.media_id, device_id=device_id, forwarded=True)


def _original(*, sender: User, source: object) -> Message:
    if not isinstance(source, dict):
        raise InvalidInput('forward must be {"conversation": <id>, "seq": <seq>}: the message to send on.',
                           field="forward")
    conversation_id = parse_id(source.get("conversation"), field="forward.conversation")
    seq = parse_id(source.get("seq"), field="forward.seq")
    page = selectors.member_history_page(user_id=sender.pk, conversation_id=conversation_id, after_seq=seq - 1, limit=1)
    if page is None:
        raise NotFound(f"You are not in conversation {conversation_id}.", field="forward.conversation")
    original = page.messages[0] if page.messages and page.messages[0].seq == seq else None
    if original is None:
        raise NotFound(f"There is no message {seq} in conversation {conversation_id} that you can see.",
                       field="forward.seq")
    if original.kind != Message.Kind.TEXT:
        what = "a system notice" if original.kind == Message.Kind.SYSTEM else "deleted"
        raise InvalidInput(f"Message {seq} is {what}: only people's messages can be forwarded.", field="forward.seq")
    return original
