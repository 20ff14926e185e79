"""Two demo people with a chat between them, so a fresh `make run` has something to show.

Their password is published (the README, this file), so they exist only on a server that listens
on the machine itself. `make run HOST=0.0.0.0` (or any other address) creates none, and takes the
published password away from demo people made before, so nobody can log in as them from outside.
"""

import ipaddress
import uuid

from django.core.management.base import BaseCommand

from broker.services import accounts, conversations, send
from storage import selectors

DEMO_PEOPLE = [
    ("+12025550101", "Alice Demo"),
    ("+12025550102", "Bob Demo"),
]
DEMO_PASSWORD = "demo-password-1"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


class Command(BaseCommand):
    help = ("Create two demo users (if missing) with a direct conversation, and print their logins; "
            "only for a server on a loopback address (--host).")

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="the address the server will listen on")

    def handle(self, *args, host: str, **options):
        if not is_loopback(host):
            self._disable_published_password(host)
            return
        people = []
        for phone, name in DEMO_PEOPLE:
            user = selectors.user_by_phone(phone_number=phone)
            if user is None:
                user = accounts.create_account(phone_number=phone, password=DEMO_PASSWORD, display_name=name)
            people.append(user)
        alice, bob = people
        conversation, created = conversations.direct_conversation_between(user=alice, peer=bob)
        if created:
            send.send_message(sender=alice, conversation_id=conversation.pk, client_id=f"demo-{uuid.uuid4()}",
                              text="Hi Bob! This is messenger.")
        self.stdout.write("Demo logins (phone number / password):")
        for user in people:
            self.stdout.write(f"  {user.display_name}: {user.phone_number} / {DEMO_PASSWORD}")

    def _disable_published_password(self, host: str) -> None:
        self.stdout.write(f"No demo logins: the server listens on {host}, not only on this machine.")
        for phone, _ in DEMO_PEOPLE:
            user = selectors.user_by_phone(phone_number=phone)
            if user is not None and user.check_password(DEMO_PASSWORD):
                user.set_unusable_password()
                user.save(update_fields=["password"])
                self.stdout.write(f"  {user.display_name} ({phone}) can no longer log in with the published demo password.")
