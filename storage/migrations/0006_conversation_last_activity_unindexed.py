import django.utils.timezone
from django.db import migrations, models

# The index Django named for `db_index=True` (the same name on SQLite and PostgreSQL). Dropped by
# name: Django's own AlterField rebuilds the whole table on SQLite to drop one index.
INDEX = "storage_conversation_last_activity_at_e94aacb9"


class Migration(migrations.Migration):

    dependencies = [
        ("storage", "0005_message_sender_recent"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="conversation",
                    name="last_activity_at",
                    field=models.DateTimeField(default=django.utils.timezone.now),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{INDEX}"',
                    reverse_sql=f'CREATE INDEX "{INDEX}" ON "storage_conversation" ("last_activity_at")',
                ),
            ],
        ),
    ]
