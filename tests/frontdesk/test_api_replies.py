"""Replying to a message over REST: `POST messages` with `reply_to`, and `reply_to` in every message
the API returns (the send's answer, history, the conversation list), checked against the schema."""

import pytest

from broker.services import deletion
from storage.models import Message
from tests.factories import api_user, direct_conversation, group_conversation, sent_message

pytestmark = pytest.mark.django_db


def messages_url(conversation_id: int) -> str:
    return f"/api/v1/conversations/{conversation_id}/messages"


@pytest.fixture
def chat():
    alice, alice_client = api_user(display_name="Alice")
    bob, bob_client = api_user(display_name="Bob")
    return alice, alice_client, bob, bob_client, direct_conversation(alice, bob)


def test_a_reply_is_answered_with_the_seq_it_quotes_and_history_keeps_it(chat):
    alice, alice_client, bob, bob_client, conversation = chat
    sent_message(alice, conversation, "lunch?")

    response = bob_client.post(messages_url(conversation.pk), {"client_id": "r1", "text": "yes", "reply_to": 1})

    assert response.status_code == 201
    assert (response.json()["seq"], response.json()["reply_to"]) == (2, 1)
    history = alice_client.get(messages_url(conversation.pk)).json()["results"]
    assert [(m["text"], m["reply_to"]) for m in history] == [("lunch?", None), ("yes", 1)]
    # The one message the browser fetches to show a quote it has not loaded.
    quoted = alice_client.get(messages_url(conversation.pk), {"after_seq": 0, "limit": 1}).json()["results"]
    assert [(m["seq"], m["text"]) for m in quoted] == [(1, "lunch?")]
    listed = bob_client.get("/api/v1/conversations").json()[0]["last_message"]
    assert (listed["seq"], listed["reply_to"]) == (2, 1)


def test_a_null_reply_to_is_a_message_that_quotes_nothing(chat):
    alice, _, _, bob_client, conversation = chat
    sent_message(alice, conversation)

    response = bob_client.post(messages_url(conversation.pk), {"client_id": "r1", "text": "hi", "reply_to": None})

    assert response.status_code == 201 and response.json()["reply_to"] is None


@pytest.mark.parametrize("value", [0, -1, "first", True, 1.5, [1], 2**63])
def test_a_reply_to_that_is_not_a_seq_is_a_400_naming_it(chat, value):
    alice, _, _, bob_client, conversation = chat
    sent_message(alice, conversation)

    response = bob_client.post(messages_url(conversation.pk), {"client_id": "r1", "text": "hm", "reply_to": value})

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "reply_to"
    assert Message.objects.filter(conversation=conversation).count() == 1


def test_a_reply_to_no_message_there_is_a_404_naming_it_and_nothing_is_stored(chat):
    alice, _, _, bob_client, conversation = chat
    sent_message(alice, conversation)

    response = bob_client.post(messages_url(conversation.pk), {"client_id": "r1", "text": "hm", "reply_to": 5})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found" and response.json()["error"]["field"] == "reply_to"
    assert Message.objects.filter(conversation=conversation).count() == 1
    conversation.refresh_from_db()
    assert conversation.last_seq == 1


def test_a_reply_to_a_system_notice_is_a_400_naming_it():
    alice, alice_client = api_user()
    bob, _ = api_user()
    group = group_conversation(alice, bob)

    response = alice_client.post(messages_url(group.pk), {"client_id": "r1", "text": "hm", "reply_to": 1})

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "reply_to"
    assert Message.objects.filter(conversation=group).count() == 1


def test_a_repeated_client_id_answers_200_with_the_original_reply(chat):
    alice, _, _, bob_client, conversation = chat
    sent_message(alice, conversation)
    first = bob_client.post(messages_url(conversation.pk), {"client_id": "r1", "text": "yes", "reply_to": 1})

    again = bob_client.post(messages_url(conversation.pk), {"client_id": "r1", "text": "yes", "reply_to": 7})

    assert (first.status_code, again.status_code) == (201, 200)
    assert (again.json()["id"], again.json()["reply_to"]) == (first.json()["id"], 1)


def test_a_reply_to_a_message_deleted_later_still_names_it(chat):
    alice, alice_client, _, bob_client, conversation = chat
    sent_message(alice, conversation, "oops")
    bob_client.post(messages_url(conversation.pk), {"client_id": "r1", "text": "what?", "reply_to": 1})

    deletion.delete_for_everyone(user=alice, conversation_id=conversation.pk, seq=1)

    history = bob_client.get(messages_url(conversation.pk)).json()["results"]
    assert [(m["seq"], m["kind"], m["reply_to"]) for m in history][:2] == [(1, "removed", None), (2, "text", 1)]
