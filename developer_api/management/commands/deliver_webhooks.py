from django.core.management.base import BaseCommand

from developer_api.services import webhooks


class Command(BaseCommand):
    help = ("Deliver every webhook event that is due now, in order per conversation. The task worker "
            "(manage.py db_worker) does this as events arrive; run this from cron to recover events "
            "whose task was lost (a worker killed mid-task, say).")

    def handle(self, *args, **options):
        delivered = webhooks.deliver_due()
        self.stdout.write(f"{delivered} webhook event(s) delivered.")
