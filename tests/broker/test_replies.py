"""Replying to (quoting) a message: `send_message(reply_to=seq)` checks the quoted message within the
send's own statement and stores the reference, which every message payload carries."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from broker import events
from broker.errors import InvalidInput, NotFound
from broker.services import deletion, media as media_service, moderation
from broker.services.conversations import add_members
from broker.services.send import send_message
from storage.models import Conversation, Message
from tests import media_samples as samples
from tests.factories import UserFactory, direct_conversation, group_conversation, saved_contacts, sent_message

# As in test_send.py: inside the test's transaction (the general path) and in autocommit, as a
# server sends (on SQLite, the driver's own transaction; on PostgreSQL one statement either way).
both_ways = pytest.mark.parametrize("how", [
    pytest.param("in a transaction", marks=pytest.mark.django_db),
    pytest.param("as served", marks=pytest.mark.django_db(transaction=True)),
])


def last_seq(conversation: Conversation) -> int:
    conversation.refresh_from_db()
    return conversation.last_seq


@both_ways
def test_a_reply_keeps_the_seq_it_quotes_and_every_payload_says_so(how):
    alice, bob = UserFactory(), UserFactory()
    chat = direct_conversation(alice, bob)
    question = sent_message(alice, chat, "lunch?")

    reply, created = send_message(sender=bob, conversation_id=chat.pk, client_id="r1", text="yes!",
                                  reply_to=question.seq)

    assert created and reply.reply_to_seq == question.seq
    assert Message.objects.get(pk=reply.pk).reply_to_seq == question.seq
    assert events.message_payload(reply)["reply_to"] == question.seq
    assert events.message_payload(question)["reply_to"] is None
    plain, _ = send_message(sender=bob, conversation_id=chat.pk, client_id="r2", text="no quote")
    assert Message.objects.get(pk=plain.pk).reply_to_seq is None


@both_ways
def test_a_reply_may_quote_ones_own_message_and_be_quoted_in_turn(how):
    alice, bob = UserFactory(), UserFactory()
    chat = direct_conversation(alice, bob)
    first = sent_message(alice, chat, "one")
    second, _ = send_message(sender=alice, conversation_id=chat.pk, client_id="a2", text="and", reply_to=first.seq)
    third, _ = send_message(sender=bob, conversation_id=chat.pk, client_id="b1", text="what?", reply_to=second.seq)

    assert [(m.seq, m.reply_to_seq) for m in Message.objects.filter(conversation=chat).order_by("seq")] == [
        (1, None), (2, 1), (3, 2)]
    assert third.reply_to_seq == 2


@pytest.mark.django_db(transaction=True)
def test_a_photo_can_be_a_reply(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    alice, bob = UserFactory(), UserFactory()
    chat = direct_conversation(alice, bob)
    question = sent_message(alice, chat, "show me")
    photo = media_service.upload(uploader=bob, file=samples.uploaded(samples.image_bytes(), "a.jpg", "image/jpeg"))

    reply, _ = send_message(sender=bob, conversation_id=chat.pk, client_id="p1", media_id=photo.pk, reply_to=question.seq)

    assert (Message.objects.get(pk=reply.pk).reply_to_seq, reply.media_id) == (question.seq, photo.pk)
    with pytest.raises(NotFound) as refused:
        send_message(sender=bob, conversation_id=chat.pk, client_id="p2", media_id=photo.pk, reply_to=99)
    assert refused.value.field == "reply_to"


@both_ways
@pytest.mark.parametrize("value", [0, -3, "two", True, 1.5, [1], {"seq": 1}, 2**63])
def test_a_reply_to_that_is_not_a_seq_is_refused_naming_it_and_nothing_is_stored(how, value):
    alice, bob = UserFactory(), UserFactory()
    chat = direct_conversation(alice, bob)
    sent_message(alice, chat)

    with pytest.raises(InvalidInput) as refused:
        send_message(sender=bob, conversation_id=chat.pk, client_id="r1", text="hm", reply_to=value)

    assert refused.value.field == "reply_to" and "reply_to" in refused.value.message
    assert last_seq(chat) == 1 and not Message.objects.filter(client_id="r1").exists()


@both_ways
def test_a_reply_to_no_message_there_is_refused_and_nothing_is_stored_nor_a_seq_taken(how):
    alice, bob, carol = UserFactory(), UserFactory(), UserFactory()
    chat = direct_conversation(alice, bob)
    elsewhere = direct_conversation(alice, carol)
    for n in range(3):
        sent_message(alice, elsewhere, f"for carol {n}")
    sent_message(alice, chat)

    for client_id, seq in (("r1", 2), ("r2", 3)):  # seqs that exist, but in another conversation
        with pytest.raises(NotFound) as refused:
            send_message(sender=bob, conversation_id=chat.pk, client_id=client_id, text="hm", reply_to=seq)
        assert refused.value.field == "reply_to" and "reply_to" in refused.value.message

    assert last_seq(chat) == 1 and not Message.objects.filter(sender=bob).exists()
    # The refusal took nothing: the next message is 2.
    assert sent_message(bob, chat).seq == 2


@both_ways
def test_a_system_notice_cannot_be_replied_to(how):
    alice, bob = UserFactory(), UserFactory()
    group = group_conversation(alice, bob)  # seq 1: "Alice created the group"

    with pytest.raises(InvalidInput) as refused:
        send_message(sender=bob, conversation_id=group.pk, client_id="r1", text="hm", reply_to=1)

    assert refused.value.field == "reply_to" and "system" in refused.value.message
    assert last_seq(group) == 1


@both_ways
def test_a_member_added_later_cannot_quote_what_came_before_they_joined(how):
    alice, bob, carol = UserFactory(), UserFactory(), UserFactory()
    group = group_conversation(alice, bob)
    before = sent_message(alice, group, "before carol")
    saved_contacts(alice, carol)
    add_members(actor=alice, conversation_id=group.pk, user_ids=[carol.pk])
    after = sent_message(alice, group, "welcome carol")

    with pytest.raises(NotFound) as refused:
        send_message(sender=carol, conversation_id=group.pk, client_id="c1", text="hm", reply_to=before.seq)
    assert refused.value.field == "reply_to"

    reply, _ = send_message(sender=carol, conversation_id=group.pk, client_id="c2", text="hi!", reply_to=after.seq)
    assert reply.reply_to_seq == after.seq
    # Bob, there from the start, may quote the older one.
    assert send_message(sender=bob, conversation_id=group.pk, client_id="b1", text="yes",
                        reply_to=before.seq)[0].reply_to_seq == before.seq


@both_ways
def test_not_being_in_the_conversation_is_said_before_anything_of_the_reply(how):
    alice, bob, mallory = UserFactory(), UserFactory(), UserFactory()
    chat = direct_conversation(alice, bob)
    sent_message(alice, chat)

    with pytest.raises(NotFound) as refused:
        send_message(sender=mallory, conversation_id=chat.pk, client_id="m1", text="hm", reply_to=1)
    assert refused.value.field == "conversation"


@both_ways
def test_a_repeated_client_id_returns_the_original_whatever_reply_to_it_carries_now(how):
    alice, bob = UserFactory(), UserFactory()
    chat = direct_conversation(alice, bob)
    sent_message(alice, chat, "one")
    sent_message(alice, chat, "two")
    original, created = send_message(sender=bob, conversation_id=chat.pk, client_id="r1", text="re one", reply_to=1)

    for reply_to in (1, 2, 99, None):
        again, created_again = send_message(sender=bob, conversation_id=chat.pk, client_id="r1", text="re one",
                                            reply_to=reply_to)
        assert (again.pk, again.reply_to_seq, created_again) == (original.pk, 1, False)
    assert last_seq(chat) == 3


@both_ways
def test_a_reply_keeps_its_reference_when_the_quoted_message_is_deleted_or_taken_down(how):
    alice, bob = UserFactory(), UserFactory()
    chat = direct_conversation(alice, bob)
    deleted = sent_message(alice, chat, "oops")
    taken_down = sent_message(alice, chat, "spam")
    reply_1, _ = send_message(sender=bob, conversation_id=chat.pk, client_id="r1", text="what?", reply_to=deleted.seq)
    reply_2, _ = send_message(sender=bob, conversation_id=chat.pk, client_id="r2", text="eh", reply_to=taken_down.seq)

    deletion.delete_for_everyone(user=alice, conversation_id=chat.pk, seq=deleted.seq)
    moderation.take_down(message_id=taken_down.pk)

    stored = {m.seq: m for m in Message.objects.filter(conversation=chat)}
    assert (stored[reply_1.seq].reply_to_seq, stored[reply_2.seq].reply_to_seq) == (deleted.seq, taken_down.seq)
    assert stored[deleted.seq].kind == stored[taken_down.seq].kind == Message.Kind.REMOVED
    # A removed message keeps its place, and may still be quoted: clients show the quote as deleted.
    late, _ = send_message(sender=bob, conversation_id=chat.pk, client_id="r3", text="gone?", reply_to=deleted.seq)
    assert late.reply_to_seq == deleted.seq


@pytest.mark.django_db(transaction=True)
def test_checking_what_a_reply_quotes_costs_no_statement_of_its_own():
    """The quoted message is read within the send's statement: a reply runs as many as a message
    that quotes nothing (with queries watched, every path goes through Django, which counts them)."""
    alice, bob = UserFactory(), UserFactory()
    chat = direct_conversation(alice, bob)
    sent_message(alice, chat)

    with CaptureQueriesContext(connection) as plain:
        send_message(sender=bob, conversation_id=chat.pk, client_id="p1", text="plain")
    with CaptureQueriesContext(connection) as reply:
        send_message(sender=bob, conversation_id=chat.pk, client_id="r1", text="reply", reply_to=1)

    assert len(reply.captured_queries) == len(plain.captured_queries)
    assert Message.objects.get(client_id="r1").reply_to_seq == 1
