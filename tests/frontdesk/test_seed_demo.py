"""`make run`'s demo people: a chat to show on a fresh server, never a published password exposed."""

import pytest
from django.core.management import call_command
from django.test import Client

from frontdesk.management.commands.seed_demo import DEMO_PASSWORD, DEMO_PEOPLE
from storage.models import Message, User

pytestmark = pytest.mark.django_db(transaction=True)


def logs_in(phone: str) -> bool:
    response = Client().post("/api/v1/auth/login", {"phone_number": phone, "password": DEMO_PASSWORD,
                                                     "device_name": "test"}, content_type="application/json")
    return response.status_code == 200


def test_on_this_machine_two_demo_people_can_log_in_and_have_a_chat(capsys):
    call_command("seed_demo")
    call_command("seed_demo", "--host", "::1")  # again: nothing twice

    assert User.objects.filter(phone_number__in=[phone for phone, _ in DEMO_PEOPLE]).count() == 2
    assert list(Message.objects.values_list("text", flat=True)) == ["Hi Bob! This is messenger."]
    assert all(logs_in(phone) for phone, _ in DEMO_PEOPLE)
    assert f"{DEMO_PEOPLE[0][0]} / {DEMO_PASSWORD}" in capsys.readouterr().out


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "chat.example.com", "::"])
def test_a_server_reachable_from_elsewhere_gets_no_demo_people(host, capsys):
    call_command("seed_demo", "--host", host)

    assert not User.objects.exists()
    assert DEMO_PASSWORD not in capsys.readouterr().out


def test_demo_people_made_before_lose_the_published_password_once_served_to_others():
    call_command("seed_demo")
    bob = User.objects.get(phone_number=DEMO_PEOPLE[1][0])
    bob.set_password("bob's own now")
    bob.save()

    call_command("seed_demo", "--host", "0.0.0.0")

    assert not logs_in(DEMO_PEOPLE[0][0])
    assert Client().post("/api/v1/auth/login", {"phone_number": bob.phone_number, "password": "bob's own now",
                                                "device_name": "test"}, content_type="application/json").status_code == 200
    assert Message.objects.count() == 1  # their chat stays
