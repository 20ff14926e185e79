"""Delete uploads that nothing carries (no message, nobody's photo, no group's) once the upload
grace period has passed, then the files under media/ that no upload uses and that are older than
the same period. Run it now and then (cron, a systemd timer); it is safe to run at any time,
uploads in progress included."""

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from broker.services.media import collect_unused, sweep_unused_files


class Command(BaseCommand):
    help = ("Remove unsent uploads (no message or photo uses them) older than MESSENGER['MEDIA_UPLOAD_GRACE'] "
            "seconds, and their files, then files no upload uses that are older than that.")

    def add_arguments(self, parser):
        parser.add_argument("--grace", type=int, default=None,
                            help="Seconds an unsent upload, or a file no upload uses, is kept "
                                 "(default: MESSENGER_MEDIA_UPLOAD_GRACE).")

    def handle(self, *args, grace=None, **options):
        if grace is not None and grace < 0:  # as MESSENGER_MEDIA_UPLOAD_GRACE refuses it
            raise CommandError(f"--grace {grace}: expected a whole number of seconds, 0 or more.")
        seconds = settings.MESSENGER["MEDIA_UPLOAD_GRACE"] if grace is None else grace
        count = collect_unused(older_than=timedelta(seconds=seconds))
        swept = sweep_unused_files(older_than=timedelta(seconds=seconds))
        self.stdout.write(f"Removed {count} unsent upload(s) and {swept} file(s) no upload used.")
