"""Fewer indexes on messages: every one of them is written by every message sent.

On SQLite each index a message touches is one more page in the write-ahead log at commit (8 pages
per message before this, 6 after; docs/performance.md). The ones dropped served nothing another
index did not: `conversation_id` is the first column of unique_message_seq, `sender_id` the first
of unique_sender_client_id (made whole: a NULL client_id never conflicts in a unique index, so the
partial condition added nothing), and `media_id` is indexed only where it is set.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('storage', '0003_media'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='message',
            name='unique_sender_client_id',
        ),
        migrations.AddConstraint(
            model_name='message',
            constraint=models.UniqueConstraint(fields=('sender', 'client_id'), name='unique_sender_client_id'),
        ),
        migrations.AlterField(
            model_name='message',
            name='conversation',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='messages', to='storage.conversation'),
        ),
        migrations.AlterField(
            model_name='message',
            name='sender',
            field=models.ForeignKey(db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AlterField(
            model_name='message',
            name='media',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='messages', to='storage.media'),
        ),
        migrations.AddIndex(
            model_name='message',
            index=models.Index(condition=models.Q(('media__isnull', False)), fields=['media'], name='message_media'),
        ),
    ]
