"""Departures are kept: a group one left stays in one's list, readable up to the notice of one's
going (storage.models.Departure). The rows already there were made only to send a former member
what they had not received; they become such groups, readable from where their delivery stood
(what catch-up sends them anyway: nothing older that the row did not say they may see), under the
group's title, among those who were in it before the notice."""

import django.utils.timezone
from django.db import migrations, models


def describe_existing(apps, schema_editor):
    Departure = apps.get_model("storage", "Departure")
    Membership = apps.get_model("storage", "Membership")
    Message = apps.get_model("storage", "Message")
    for departure in Departure.objects.select_related("conversation").iterator():
        notice = Message.objects.filter(conversation_id=departure.conversation_id, seq=departure.through_seq).first()
        others = Membership.objects.filter(conversation_id=departure.conversation_id,
                                           joined_after_seq__lt=departure.through_seq).order_by("joined_at", "pk")
        Departure.objects.filter(pk=departure.pk).update(
            joined_after_seq=departure.delivered_seq, read_seq=departure.delivered_seq,
            title=departure.conversation.title,
            left_at=notice.created_at if notice else departure.conversation.last_activity_at,
            members=[{"user": m.user_id, "role": m.role, "delivered_seq": min(m.delivered_seq, departure.through_seq),
                      "read_seq": min(m.read_seq, departure.through_seq)} for m in others],
        )


def forget_delivered(apps, schema_editor):
    """Back to departures that last only until delivered: those delivered go, as they then did."""
    Departure = apps.get_model("storage", "Departure")
    Departure.objects.filter(delivered_seq__gte=models.F("through_seq")).delete()


class Migration(migrations.Migration):

    dependencies = [
        ('storage', '0010_media_name'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='departure',
            name='departure_not_delivered',
        ),
        migrations.AddField(
            model_name='departure',
            name='joined_after_seq',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='departure',
            name='left_at',
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.AddField(
            model_name='departure',
            name='members',
            field=models.JSONField(default=list),
        ),
        migrations.AddField(
            model_name='departure',
            name='read_seq',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='departure',
            name='title',
            field=models.CharField(blank=True, max_length=100),
        ),
        migrations.RunPython(describe_existing, forget_delivered),
        migrations.AddIndex(
            model_name='departure',
            index=models.Index(condition=models.Q(('delivered_seq__lt', models.F('through_seq'))), fields=['user', 'conversation', 'delivered_seq', 'through_seq'], name='departure_undelivered'),
        ),
        migrations.AddConstraint(
            model_name='departure',
            constraint=models.CheckConstraint(condition=models.Q(('read_seq__lte', models.F('delivered_seq')), ('delivered_seq__lte', models.F('through_seq'))), name='departure_watermarks_in_order'),
        ),
    ]
