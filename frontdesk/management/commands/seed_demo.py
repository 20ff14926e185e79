"""Two demo people with a chat between them, so a fresh `make run` has something to show."""

import uuid

from django.core.management.base import BaseCommand

from broker.services import accounts, conversations, send
from storage import selectors

DEMO_PEOPLE = [
    ("+12025550101", "Alice Demo"),
    ("+12025550102", "Bob Demo"),
]
DEMO_PASSWORD = "demo-password-1"


class Command(BaseCommand):
    help = "Create two demo users (if missing) with a direct conversation, and print their logins."

    def handle(self, *args, **options):
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
