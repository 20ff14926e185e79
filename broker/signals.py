"""What the broker announces to other apps (developer_api's webhooks subscribe here).

`message_stored` and `watermark_advanced` are sent after the write commits, from the thread that
committed it: for a device's sends and receipts on PostgreSQL that is the event loop's
(storage/async_sql.py), where Django refuses database work. Those paths leave conversations with a
developer app's account among the members to the database threads, so a receiver may work in the
database when `context.business_member_ids` is not empty, and must not otherwise (developer_api's
receivers do nothing then).
"""

from django.dispatch import Signal

# Both may carry `context`: the storage.selectors.ConversationContext the change was made with
# (members, kind, which members are developer apps' accounts), or None; receivers that need to know
# more than it says read it themselves. It is as of just before the change.

# sender=Message class; kwargs: message, context
message_stored = Signal()
# sender=Membership class; kwargs: conversation_id, user_id, seq, status ("delivered" | "read"), context
watermark_advanced = Signal()
# sender=Message class; kwargs: message (as taken down: kind removed, its text and media gone).
# Unlike the two above, sent inside the take-down's transaction, from a thread where database work
# is allowed (an operator's request): what receivers write is committed, or undone, with it.
message_taken_down = Signal()
# sender=Message class; kwargs: message (as edited: its new text and edited_at). Sent inside the
# edit's transaction, as `message_taken_down` is.
message_edited = Signal()
