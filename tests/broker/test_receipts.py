"""broker.services.receipts: delivered/read watermarks that only move forward, and message status."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from broker import signals
from broker.errors import InvalidInput, NotFound
from broker.services import conversations, receipts
from broker.services.send import current_status
from tests.factories import UserFactory, direct_conversation, group_conversation, membership, saved_contacts, sent_message


def watermarks(user, conversation) -> tuple[int, int]:
    member = membership(user, conversation)
    return member.delivered_seq, member.read_seq


@pytest.fixture
def chat(db):
    """Alice wrote three messages to Bob."""
    alice, bob = UserFactory(), UserFactory()
    conversation = direct_conversation(alice, bob)
    for _ in range(3):
        sent_message(alice, conversation)
    return alice, bob, conversation


def test_delivery_advances_the_watermark(chat):
    _, bob, conversation = chat

    assert receipts.mark_delivered(user=bob, conversation_id=conversation.pk, seq=2) is True

    assert watermarks(bob, conversation) == (2, 0)


def test_watermarks_never_move_backwards(chat):
    _, bob, conversation = chat
    receipts.mark_read(user=bob, conversation_id=conversation.pk, seq=3)

    assert receipts.mark_delivered(user=bob, conversation_id=conversation.pk, seq=1) is False
    assert receipts.mark_read(user=bob, conversation_id=conversation.pk, seq=2) is False
    assert receipts.mark_read(user=bob, conversation_id=conversation.pk, seq=3) is False

    assert watermarks(bob, conversation) == (3, 3)


def test_reading_implies_delivery_but_delivery_not_reading(chat):
    _, bob, conversation = chat

    receipts.mark_read(user=bob, conversation_id=conversation.pk, seq=2)
    assert watermarks(bob, conversation) == (2, 2)
    receipts.mark_delivered(user=bob, conversation_id=conversation.pk, seq=3)
    assert watermarks(bob, conversation) == (3, 2)


@pytest.mark.parametrize("seq", [4, 2**63 - 1, 2**63, 10**30, -1, "2", 2.0, True, None])
def test_a_seq_that_is_not_a_message_of_the_conversation_is_invalid(chat, seq):
    _, bob, conversation = chat

    for mark in (receipts.mark_delivered, receipts.mark_read):
        with pytest.raises(InvalidInput) as refused:
            mark(user=bob, conversation_id=conversation.pk, seq=seq)
        assert refused.value.field == "seq"

    assert watermarks(bob, conversation) == (0, 0)


def test_outsiders_cannot_move_watermarks(chat):
    _, _, conversation = chat
    mallory = UserFactory()

    with pytest.raises(NotFound):
        receipts.mark_read(user=mallory, conversation_id=conversation.pk, seq=1)


@pytest.mark.parametrize("mark", [receipts.mark_delivered, receipts.mark_read])
def test_a_logged_out_device_cannot_move_watermarks(chat, mark):
    from broker.errors import CredentialRevoked
    from storage.models import Device

    _, bob, conversation = chat
    device = Device.objects.create(user=bob, token_hash="0" * 64, name="phone")
    device_id = device.pk
    assert mark(user=bob, conversation_id=conversation.pk, seq=1, device_id=device_id) is True
    device.delete()  # logged out

    with pytest.raises(CredentialRevoked):
        mark(user=bob, conversation_id=conversation.pk, seq=3, device_id=device_id)
    assert watermarks(bob, conversation)[0] == 1


@pytest.mark.django_db(transaction=True)  # autocommit, as served
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement receipt is PostgreSQL's")
@pytest.mark.parametrize("mark", [receipts.mark_delivered, receipts.mark_read])
def test_a_receipt_on_postgresql_is_one_statement(mark):
    alice, bob = UserFactory(), UserFactory()
    conversation = direct_conversation(alice, bob)
    sent_message(alice, conversation)
    sent_message(alice, conversation)

    with CaptureQueriesContext(connection) as captured:
        assert mark(user=bob, conversation_id=conversation.pk, seq=2) is True
    with CaptureQueriesContext(connection) as again:
        assert mark(user=bob, conversation_id=conversation.pk, seq=1) is False

    assert len(captured) == 1 and len(again) == 1
    assert watermarks(bob, conversation) == ((2, 2) if mark is receipts.mark_read else (2, 0))


def test_other_apps_hear_only_of_watermarks_that_moved(chat, django_capture_on_commit_callbacks):
    _, bob, conversation = chat
    heard = []

    def receiver(sender, **kwargs):
        heard.append((kwargs["user_id"], kwargs["seq"], kwargs["status"]))

    signals.watermark_advanced.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            receipts.mark_delivered(user=bob, conversation_id=conversation.pk, seq=3)
            receipts.mark_delivered(user=bob, conversation_id=conversation.pk, seq=2)
            receipts.mark_read(user=bob, conversation_id=conversation.pk, seq=1)
    finally:
        signals.watermark_advanced.disconnect(receiver)

    assert heard == [(bob.pk, 3, "delivered"), (bob.pk, 1, "read")]


@pytest.mark.django_db
def test_a_group_message_is_delivered_and_read_only_when_every_other_member_is():
    alice, bob, carol = UserFactory(), UserFactory(), UserFactory()
    group = group_conversation(alice, bob, carol)
    message = sent_message(alice, group)

    def status():
        return current_status(message)

    assert status() == "sent"
    receipts.mark_delivered(user=bob, conversation_id=group.pk, seq=message.seq)
    assert status() == "sent"
    receipts.mark_delivered(user=carol, conversation_id=group.pk, seq=message.seq)
    assert status() == "delivered"
    receipts.mark_read(user=bob, conversation_id=group.pk, seq=message.seq)
    assert status() == "delivered"
    receipts.mark_read(user=carol, conversation_id=group.pk, seq=message.seq)
    assert status() == "read"


@pytest.mark.django_db
def test_someone_added_later_does_not_hold_back_older_messages():
    alice, bob, dave = UserFactory(), UserFactory(), UserFactory()
    group = group_conversation(alice, bob)
    message = sent_message(alice, group)
    receipts.mark_read(user=bob, conversation_id=group.pk, seq=message.seq)
    saved_contacts(alice, dave)

    conversations.add_members(actor=alice, conversation_id=group.pk, user_ids=[dave.pk])

    assert current_status(message) == "read"
    assert current_status(sent_message(alice, group)) == "sent"
