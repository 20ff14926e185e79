"""Operators in the admin's conversation pages: messages are sent through the broker, never made
or moved here (seq is the broker's, and a message belongs to the members it was sent to)."""

import pytest
from django.urls import reverse

from storage.models import Conversation, Device, Message
from tests.factories import UserFactory, direct_conversation, group_conversation, sent_message, user_with_token

pytestmark = pytest.mark.django_db

WHEN = {"created_at_0": "2026-01-01", "created_at_1": "10:00:00"}


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


def test_members_are_not_added_in_the_admin(operator):
    """The broker adds a member after the history they may see (joined_after_seq) and tells the
    others; a membership row added in the conversation's page showed its new member everything
    said before."""
    alice, bob, carol, outsider = UserFactory(), UserFactory(), UserFactory(), UserFactory()
    group = group_conversation(alice, bob, carol)
    sent_message(alice, group, "before the outsider")
    url = reverse("admin:storage_conversation_change", args=[group.pk])
    existing = list(group.memberships.order_by("pk"))
    form = {"kind": "group", "title": "Team", "created_by": alice.pk, "members_version": group.members_version,
            "created_at_0": "2026-01-01", "created_at_1": "10:00:00",
            "last_activity_at_0": "2026-01-01", "last_activity_at_1": "10:00:00",
            "memberships-TOTAL_FORMS": len(existing) + 1, "memberships-INITIAL_FORMS": len(existing),
            "memberships-MIN_NUM_FORMS": 0, "memberships-MAX_NUM_FORMS": 1000}
    for i, m in enumerate(existing):
        form.update({f"memberships-{i}-id": m.pk, f"memberships-{i}-conversation": group.pk,
                     f"memberships-{i}-user": m.user_id, f"memberships-{i}-role": m.role,
                     f"memberships-{i}-joined_at_0": "2026-01-01", f"memberships-{i}-joined_at_1": "10:00:00"})
    n = len(existing)
    form.update({f"memberships-{n}-conversation": group.pk, f"memberships-{n}-user": outsider.pk,
                 f"memberships-{n}-role": "member",
                 f"memberships-{n}-joined_at_0": "2026-01-01", f"memberships-{n}-joined_at_1": "10:00:00"})

    response = operator.post(url, form)

    assert response.status_code == 302, response.context["errors"] if response.context else response
    assert not Conversation.objects.get(pk=group.pk).memberships.filter(user=outsider).exists()


def test_conversations_are_not_made_or_changed_in_kind_in_the_admin(operator):
    alice, bob = UserFactory(), UserFactory()
    chat = direct_conversation(alice, bob)

    added = operator.post(reverse("admin:storage_conversation_add"), {"kind": "direct", "title": ""})
    operator.post(reverse("admin:storage_conversation_change", args=[chat.pk]), {
        "kind": "group", "title": "now a group?",
        "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0",
    })

    assert added.status_code == 403  # a conversation with no members and no direct pair
    chat.refresh_from_db()
    assert chat.kind == "direct"  # a direct chat turned group would take members and admins


@pytest.mark.parametrize("model", ["contact", "block"])
def test_contacts_and_blocks_are_looked_at_not_made_or_undone_in_the_admin(operator, model):
    # A block made or lifted here would skip the broker: no presence change sent to either person.
    alice, bob = UserFactory(), UserFactory()
    fields = {"contact": {"owner": alice.pk, "contact": bob.pk, "name": "Bob"},
              "block": {"blocker": alice.pk, "blocked": bob.pk}}[model]

    response = operator.post(reverse(f"admin:storage_{model}_add"), {**fields, **WHEN})

    assert response.status_code == 403
    assert operator.get(reverse(f"admin:storage_{model}_changelist")).status_code == 200


def test_an_operator_still_deletes_a_user_who_has_contacts_and_blocks(operator):
    from storage.models import Block, Contact, User

    spammer, victim = UserFactory(), UserFactory()
    Contact.objects.create(owner=spammer, contact=victim)
    Block.objects.create(blocker=victim, blocked=spammer)

    response = operator.post(reverse("admin:storage_user_delete", args=[spammer.pk]), {"post": "yes"})

    assert response.status_code == 302
    assert not User.objects.filter(pk=spammer.pk).exists()


def test_what_a_person_said_is_not_rewritten_in_the_admin(operator):
    # The members keep their copies and nobody would be told: the admin would say one thing and
    # every screen another. Operators take a message down instead (tests/broker/test_moderation.py).
    alice, bob = UserFactory(), UserFactory()
    chat = direct_conversation(alice, bob)
    message = sent_message(alice, chat, "see you at 8")

    operator.post(reverse("admin:storage_message_change", args=[message.pk]),
                  {"kind": "text", "text": "see you never", "event": "null", **WHEN})

    message.refresh_from_db()
    assert (message.kind, message.text) == ("text", "see you at 8")


def test_a_group_title_is_not_changed_in_the_admin(operator):
    alice, bob = UserFactory(), UserFactory()
    group = group_conversation(alice, bob, title="Climbing")

    operator.post(reverse("admin:storage_conversation_change", args=[group.pk]), {
        "title": "Renamed unseen", "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0",
    })

    group.refresh_from_db()
    assert group.title == "Climbing"  # no member's client would hear of a new one


def test_one_message_is_not_deleted_but_a_whole_conversation_is(operator):
    alice, bob = UserFactory(), UserFactory()
    chat = direct_conversation(alice, bob)
    first, second, third = (sent_message(alice, chat, text) for text in ("one", "two", "three"))

    refused = operator.post(reverse("admin:storage_message_delete", args=[second.pk]), {"post": "yes"})
    operator.post(reverse("admin:storage_message_changelist"),
                  {"action": "delete_selected", "_selected_action": [str(second.pk)], "post": "yes"})

    assert refused.status_code == 403
    # A gap at seq 2 would stop every client's acknowledgements at 1, for ever (docs/protocol.md).
    assert list(Message.objects.filter(conversation=chat).values_list("seq", flat=True)) == [1, 2, 3]

    deleted = operator.post(reverse("admin:storage_conversation_delete", args=[chat.pk]), {"post": "yes"})

    assert deleted.status_code == 302
    assert not Conversation.objects.filter(pk=chat.pk).exists()
    assert not Message.objects.filter(pk__in=[first.pk, second.pk, third.pk]).exists()
