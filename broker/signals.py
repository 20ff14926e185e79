"""What the broker announces to other apps (developer_api's webhooks subscribe here).

Both are sent after the write commits, from the thread that committed it.
"""

from django.dispatch import Signal

# sender=Message class; kwargs: message
message_stored = Signal()
# sender=Membership class; kwargs: conversation_id, user_id, seq, status ("delivered" | "read")
watermark_advanced = Signal()
