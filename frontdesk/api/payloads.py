"""REST response bodies that only the REST API needs (messages and users come from broker.events)."""

from broker import events
from broker.services import presence
from storage.models import Contact
from storage.selectors import ConversationSummary


def contact_payload(contact: Contact) -> dict:
    return {"id": contact.pk, "name": contact.name, "user": events.user_payload(contact.contact)}


def conversation_payload(summary: ConversationSummary, *, viewer_id: int, presence_seen: dict[int, bool]) -> dict:
    """`presence_seen`: presence.presence_seen_by; a member left out of it has null `online` and
    `last_seen`, as the websocket's presence events never reach the viewer about them. A group the
    viewer has left is `left`, with no `role`, as they last saw it (selectors.ConversationSummary)."""
    conversation = summary.conversation
    title = summary.title
    if conversation.kind == "direct":
        peer = next((m.user for m in summary.members if m.user_id != viewer_id), None)
        title = (peer.display_name or peer.phone_number) if peer else ""
    watermarks = events.Watermarks(summary.members)
    last = summary.last_message
    return {
        "id": conversation.pk,
        "kind": conversation.kind,
        "title": title,
        "created_at": events.timestamp(conversation.created_at),
        "last_activity_at": events.timestamp(summary.last_activity_at),
        "last_seq": summary.last_seq,
        "unread_count": summary.unread_count,
        "left": summary.left,
        "role": summary.role,
        "delivered_seq": summary.delivered_seq,
        "read_seq": summary.read_seq,
        "last_message": events.message_payload(last, status=watermarks.status_of(last)) if last else None,
        "members": [
            {
                "user": events.user_payload(m.user),
                "role": m.role,
                "joined_after_seq": m.joined_after_seq,
                "delivered_seq": m.delivered_seq,
                "read_seq": m.read_seq,
                "online": presence_seen.get(m.user_id),
                "last_seen": events.timestamp(m.user.last_seen) if m.user_id in presence_seen else None,
            }
            for m in summary.members
        ],
        # A group one has left shows none: its photo now is no longer theirs to see (nor to download).
        "photo": None if summary.left else events.photo_payload(conversation.photo_id),
        # A group one has left is never muted: nothing comes from it any more.
        **events.mute_payload(summary.membership.muted_until if summary.membership else None),
        "pinned_at": events.timestamp(summary.pinned_at),
    }


def conversation_payloads(summaries: list[ConversationSummary], *, viewer_id: int) -> list[dict]:
    everyone = sorted({m.user_id for s in summaries for m in s.members})
    seen = presence.presence_seen_by(viewer_id=viewer_id, user_ids=everyone) if everyone else {}
    return [conversation_payload(s, viewer_id=viewer_id, presence_seen=seen) for s in summaries]
