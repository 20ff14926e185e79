"""The send rate limit counts the sender's messages of the last window (broker/ratelimit.py).

Counted from the messages themselves, the limit needs no counter of its own: on PostgreSQL it is
part of the one statement that checks and stores a message (broker/services/send.py), where a
counter in Redis was a round trip of its own per message (docs/performance.md, change 29). The
index is one more written by every message, and makes the count a scan of at most the limit's
number of entries.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('storage', '0004_message_indexes'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='message',
            index=models.Index(fields=['sender', 'created_at'], name='message_sender_recent'),
        ),
    ]
