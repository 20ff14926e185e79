"""Operators in the admin's conversation pages: messages are sent through the broker, never made
or moved here (seq is the broker's, and a message belongs to the members it was sent to)."""

import pytest
from django.test import Client
from django.urls import reverse

from storage.models import Device, Message
from tests.factories import UserFactory, direct_conversation, sent_message, user_with_token

pytestmark = pytest.mark.django_db

WHEN = {"created_at_0": "2026-01-01", "created_at_1": "10:00:00"}


@pytest.fixture
def operator(admin_user):
    client = Client()
    client.force_login(admin_user)
    return client


def test_messages_are_not_added_in_the_admin(operator):
    alice, bob = UserFactory(), UserFactory()
    chat = direct_conversation(alice, bob)
    url = reverse("admin:storage_message_add")

    response = operator.post(url, {"conversation": chat.pk, "sender": alice.pk, "kind": "text", "text": "hi", **WHEN})

    assert response.status_code == 403  # it was a 500: the form has no seq to store
    assert not Message.objects.exists()


def test_a_message_stays_in_its_conversation(operator):
    alice, bob, carol, dave = UserFactory(), UserFactory(), UserFactory(), UserFactory()
    chat = direct_conversation(alice, bob)
    message = sent_message(alice, chat, "for bob only")
    other = direct_conversation(carol, dave)
    sent_message(carol, other, "theirs")
    url = reverse("admin:storage_message_change", args=[message.pk])

    response = operator.post(url, {"conversation": other.pk, "sender": carol.pk, "kind": "text",
                                   "text": "for bob only", **WHEN})

    assert response.status_code == 302  # it was a 500 on the seq taken in the other conversation
    message.refresh_from_db()
    assert (message.conversation_id, message.sender_id) == (chat.pk, alice.pk)


def test_a_device_stays_with_its_user(operator):
    """Its token logs in as the device's user: moving the device would hand that login to another."""
    alice, _ = user_with_token()
    mallory = UserFactory()
    device = Device.objects.get(user=alice)
    url = reverse("admin:storage_device_change", args=[device.pk])

    operator.post(url, {"user": mallory.pk, "name": "phone", **WHEN})

    device.refresh_from_db()
    assert device.user_id == alice.pk
    assert operator.get(reverse("admin:storage_device_add")).status_code == 403  # devices are made by logging in
