"""What the broker announces to other apps (developer_api's webhooks subscribe here).

Both are sent after the write commits, from the thread that committed it.
"""

from django.dispatch import Signal

# Both may carry `context`: the storage.selectors.ConversationContext the change was made with
# (members, kind, which members are developer apps' accounts), or None; receivers that need to know
# more than it says read it themselves. It is as of just before the change.

# sender=Message class; kwargs: message, context
message_stored = Signal()
# sender=Membership class; kwargs: conversation_id, user_id, seq, status ("delivered" | "read"), context
watermark_advanced = Signal()
