"""Delete uploads that no message carries once the upload grace period has passed, and blobs no
upload uses any more. Run it now and then (cron, a systemd timer); it is safe to run at any time."""

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand

from broker.services.media import collect_unused


class Command(BaseCommand):
    help = "Remove unsent uploads older than MESSENGER['MEDIA_UPLOAD_GRACE'] seconds, and their files."

    def add_arguments(self, parser):
        parser.add_argument("--grace", type=int, default=None,
                            help="Seconds an unsent upload is kept (default: MESSENGER_MEDIA_UPLOAD_GRACE).")

    def handle(self, *args, grace=None, **options):
        seconds = settings.MESSENGER["MEDIA_UPLOAD_GRACE"] if grace is None else grace
        count = collect_unused(older_than=timedelta(seconds=seconds))
        self.stdout.write(f"Removed {count} unsent upload(s).")
