"""Sending messages, paging through history, and the delivered/read watermarks behind each
message's status."""

from datetime import timedelta

import pytest
from django.utils import timezone

from storage.models import Message
from tests.factories import UserFactory, api_user, direct_conversation, group_conversation, membership, sent_message

pytestmark = pytest.mark.django_db


def messages_url(conversation_id: int) -> str:
    return f"/api/v1/conversations/{conversation_id}/messages"


def send(client, conversation_id: int, text: str = "hello", client_id: str = "c1"):
    return client.post(messages_url(conversation_id), {"client_id": client_id, "text": text})


def page(client, conversation_id: int, **query) -> dict:
    response = client.get(messages_url(conversation_id), query)
    assert response.status_code == 200
    return response.json()


def statuses(client, conversation_id: int) -> list[str]:
    return [m["status"] for m in page(client, conversation_id)["results"]]


def read(client, conversation_id: int, seq: int):
    return client.post(f"/api/v1/conversations/{conversation_id}/read", {"seq": seq})


def delivered(client, conversation_id: int, seq: int):
    return client.post(f"/api/v1/conversations/{conversation_id}/delivered", {"seq": seq})


def conversation_view(client, conversation_id: int) -> dict:
    return client.get(f"/api/v1/conversations/{conversation_id}").json()


@pytest.fixture
def chat():
    """Alice and Bob, each with a REST client, and their direct conversation."""
    alice, alice_client = api_user(display_name="Alice")
    bob, bob_client = api_user(display_name="Bob")
    return alice, alice_client, bob, bob_client, direct_conversation(alice, bob)


# --- Sending ----------------------------------------------------------------------------------
def test_a_sent_message_comes_back_stored_with_its_seq_and_status_sent(chat):
    alice, alice_client, _, _, conversation = chat

    response = send(alice_client, conversation.pk, "hello Bob", client_id="phone-1")

    assert response.status_code == 201
    body = response.json()
    assert body["conversation"] == conversation.pk
    assert (body["seq"], body["sender"], body["text"], body["kind"]) == (1, alice.pk, "hello Bob", "text")
    assert body["client_id"] == "phone-1" and body["event"] is None and body["status"] == "sent"
    assert Message.objects.get().pk == body["id"]


def test_each_message_takes_the_next_seq_whoever_sends_it(chat):
    _, alice_client, _, bob_client, conversation = chat

    seqs = [
        send(alice_client, conversation.pk, client_id="a1").json()["seq"],
        send(bob_client, conversation.pk, client_id="b1").json()["seq"],
        send(alice_client, conversation.pk, client_id="a2").json()["seq"],
    ]

    assert seqs == [1, 2, 3]


def test_sending_the_same_client_id_again_returns_the_first_message_with_200(chat):
    _, alice_client, _, _, conversation = chat
    first = send(alice_client, conversation.pk, "hello", client_id="retry-me")

    again = send(alice_client, conversation.pk, "hello", client_id="retry-me")

    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"] and again.json()["seq"] == 1
    assert Message.objects.count() == 1


def test_a_retried_message_reports_its_status_as_it_is_now(chat):
    _, alice_client, _, bob_client, conversation = chat
    send(alice_client, conversation.pk, client_id="retry-me")
    delivered(bob_client, conversation.pk, 1)

    again = send(alice_client, conversation.pk, client_id="retry-me")

    assert again.json()["status"] == "delivered"


def test_a_client_id_already_used_in_another_conversation_is_a_conflict(chat):
    alice, alice_client, _, _, conversation = chat
    other = direct_conversation(alice, UserFactory())
    send(alice_client, conversation.pk, client_id="same")

    response = send(alice_client, other.pk, client_id="same")

    assert response.status_code == 409
    assert response.json()["error"]["field"] == "client_id"
    assert Message.objects.count() == 1


def test_two_senders_may_use_the_same_client_id(chat):
    _, alice_client, _, bob_client, conversation = chat

    assert send(alice_client, conversation.pk, client_id="1").status_code == 201
    assert send(bob_client, conversation.pk, client_id="1").status_code == 201
    assert Message.objects.count() == 2


@pytest.mark.parametrize("text", ["", "   \n ", "nul \x00 inside"], ids=["empty", "blank", "nul"])
def test_a_message_without_proper_text_is_refused_and_nothing_stored(chat, text):
    _, alice_client, _, _, conversation = chat

    response = send(alice_client, conversation.pk, text)

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "text"
    assert Message.objects.count() == 0


def test_a_message_longer_than_the_limit_is_refused(chat, settings):
    _, alice_client, _, _, conversation = chat

    response = send(alice_client, conversation.pk, "x" * (settings.MESSENGER["MAX_TEXT_LENGTH"] + 1))

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "text"
    assert Message.objects.count() == 0


def test_a_message_without_client_id_is_refused(chat):
    _, alice_client, _, _, conversation = chat

    response = alice_client.post(messages_url(conversation.pk), {"text": "hello"})

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "client_id"
    assert Message.objects.count() == 0


@pytest.mark.parametrize("client_id, got", [(42, "a number"), (4.2, "a number"), (True, "a boolean"),
                                           (["c1"], "an array"), ({"id": "c1"}, "an object")])
def test_a_client_id_that_is_not_a_string_is_refused_as_over_the_websocket(chat, client_id, got):
    # Taken as its digits, 42 would be the same message as "42", and a client mixing the two (or
    # moving a send between REST and the websocket, which refuses 42) would not get what it expects.
    _, alice_client, _, _, conversation = chat

    response = alice_client.post(messages_url(conversation.pk), {"client_id": client_id, "text": "hello"})

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("invalid", "client_id")
    assert error["message"] == f"client_id must be a string, not {got}."
    assert Message.objects.count() == 0


def test_a_text_that_is_not_a_string_is_refused_as_over_the_websocket(chat):
    # Taken as its digits, a number would be stored as text the client never wrote as such.
    _, alice_client, _, _, conversation = chat

    response = alice_client.post(messages_url(conversation.pk), {"client_id": "t1", "text": 42})

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["field"], error["message"]) == ("invalid", "text", "text must be a string, not a number.")
    assert Message.objects.count() == 0


def test_sending_faster_than_the_rate_limit_is_refused_with_retry_after(chat, settings):
    _, alice_client, _, _, conversation = chat
    settings.MESSENGER = {**settings.MESSENGER, "SEND_RATE": 2, "SEND_RATE_WINDOW": 10}
    send(alice_client, conversation.pk, client_id="1")
    send(alice_client, conversation.pk, client_id="2")
    # The window slides: the first message, written 6 s ago, leaves it (and frees a send) in 4 s.
    Message.objects.filter(client_id="1").update(created_at=timezone.now() - timedelta(seconds=6))

    response = send(alice_client, conversation.pk, client_id="3")

    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert response.json()["error"]["retry_after"] == 4
    assert response["Retry-After"] == "4"
    assert Message.objects.count() == 2
    # A retry of a message that got through is not a new send, so the limit does not apply to it.
    assert send(alice_client, conversation.pk, client_id="2").status_code == 200


# --- History ----------------------------------------------------------------------------------
def test_history_lists_messages_in_seq_order(chat):
    alice, alice_client, bob, _, conversation = chat
    for i, sender in enumerate([alice, bob, alice, bob]):
        sent_message(sender, conversation, f"m{i}")

    body = page(alice_client, conversation.pk)

    assert [m["seq"] for m in body["results"]] == [1, 2, 3, 4]
    assert [m["text"] for m in body["results"]] == ["m0", "m1", "m2", "m3"]
    assert body["has_more"] is False


def test_history_pages_backwards_from_the_newest_message(chat):
    alice, alice_client, _, _, conversation = chat
    for i in range(5):
        sent_message(alice, conversation, f"m{i + 1}")

    newest = page(alice_client, conversation.pk, limit=2)
    older = page(alice_client, conversation.pk, limit=2, before_seq=4)
    oldest = page(alice_client, conversation.pk, limit=2, before_seq=2)

    assert ([m["seq"] for m in newest["results"]], newest["has_more"]) == ([4, 5], True)
    assert ([m["seq"] for m in older["results"]], older["has_more"]) == ([2, 3], True)
    assert ([m["seq"] for m in oldest["results"]], oldest["has_more"]) == ([1], False)


def test_history_catches_up_forwards_after_a_seq(chat):
    alice, alice_client, _, _, conversation = chat
    for i in range(5):
        sent_message(alice, conversation, f"m{i + 1}")

    next_two = page(alice_client, conversation.pk, after_seq=2, limit=2)
    rest = page(alice_client, conversation.pk, after_seq=4, limit=2)

    assert ([m["seq"] for m in next_two["results"]], next_two["has_more"]) == ([3, 4], True)
    assert ([m["seq"] for m in rest["results"]], rest["has_more"]) == ([5], False)


@pytest.mark.parametrize(
    "query", [{"limit": 0}, {"limit": 201}, {"limit": "many"}, {"before_seq": "x"}, {"after_seq": -1}]
)
def test_history_refuses_bad_paging_parameters_naming_them(chat, query):
    _, alice_client, _, _, conversation = chat

    response = alice_client.get(messages_url(conversation.pk), query)

    assert response.status_code == 400
    assert response.json()["error"]["field"] == next(iter(query))


# --- Status and watermarks --------------------------------------------------------------------
def test_a_message_goes_from_sent_to_delivered_to_read(chat):
    _, alice_client, _, bob_client, conversation = chat
    send(alice_client, conversation.pk)
    assert statuses(alice_client, conversation.pk) == ["sent"]

    assert delivered(bob_client, conversation.pk, 1).status_code == 204
    assert statuses(alice_client, conversation.pk) == ["delivered"]

    assert read(bob_client, conversation.pk, 1).status_code == 204
    assert statuses(alice_client, conversation.pk) == ["read"]
    assert conversation_view(alice_client, conversation.pk)["last_message"]["status"] == "read"


def test_a_group_message_is_delivered_only_once_every_recipient_has_it():
    alice, alice_client = api_user()
    bob, bob_client = api_user()
    carol, carol_client = api_user()
    group = group_conversation(alice, bob, carol)
    seq = send(alice_client, group.pk).json()["seq"]

    delivered(bob_client, group.pk, seq)
    assert statuses(alice_client, group.pk)[-1] == "sent"

    delivered(carol_client, group.pk, seq)
    assert statuses(alice_client, group.pk)[-1] == "delivered"

    read(bob_client, group.pk, seq)
    read(carol_client, group.pk, seq)
    assert statuses(alice_client, group.pk)[-1] == "read"


def test_a_message_in_a_group_with_nobody_else_in_it_stays_sent_wherever_it_is_seen():
    alice, alice_client = api_user()
    bob, bob_client = api_user()
    group = group_conversation(alice, bob)
    assert bob_client.delete(f"/api/v1/conversations/{group.pk}/members", {"user_id": bob.pk}).status_code == 204

    answer = send(alice_client, group.pk, "anyone?")

    assert answer.status_code == 201 and answer.json()["status"] == "sent"
    assert statuses(alice_client, group.pk)[-1] == "sent"
    assert conversation_view(alice_client, group.pk)["last_message"]["status"] == "sent"
    retried = send(alice_client, group.pk, "anyone?")
    assert retried.status_code == 200 and retried.json()["status"] == "sent"


def test_reading_lowers_the_unread_count(chat):
    alice, _, _, bob_client, conversation = chat
    for text in ("one", "two", "three"):
        sent_message(alice, conversation, text)
    assert conversation_view(bob_client, conversation.pk)["unread_count"] == 3

    read(bob_client, conversation.pk, 2)

    view = conversation_view(bob_client, conversation.pk)
    assert view["unread_count"] == 1
    assert view["read_seq"] == 2


def test_my_own_messages_are_never_unread_for_me(chat):
    alice, alice_client, _, _, conversation = chat
    sent_message(alice, conversation, "talking to myself")

    assert conversation_view(alice_client, conversation.pk)["unread_count"] == 0


def test_replying_marks_what_came_before_as_read(chat):
    alice, alice_client, bob, bob_client, conversation = chat
    sent_message(alice, conversation, "question?")

    send(bob_client, conversation.pk, "answer", client_id="b1")

    assert conversation_view(bob_client, conversation.pk)["unread_count"] == 0
    assert statuses(alice_client, conversation.pk)[0] == "read"


def test_reading_implies_delivered(chat):
    alice, _, bob, bob_client, conversation = chat
    sent_message(alice, conversation)
    sent_message(alice, conversation)

    read(bob_client, conversation.pk, 2)

    bob_membership = membership(bob, conversation)
    assert (bob_membership.delivered_seq, bob_membership.read_seq) == (2, 2)


def test_watermarks_never_move_backwards(chat):
    alice, _, bob, bob_client, conversation = chat
    for _ in range(3):
        sent_message(alice, conversation)
    read(bob_client, conversation.pk, 3)

    assert read(bob_client, conversation.pk, 1).status_code == 204
    assert delivered(bob_client, conversation.pk, 2).status_code == 204

    bob_membership = membership(bob, conversation)
    assert (bob_membership.delivered_seq, bob_membership.read_seq) == (3, 3)


@pytest.mark.parametrize("mark", [read, delivered], ids=["read", "delivered"])
def test_a_seq_past_the_newest_message_is_refused_naming_seq(chat, mark):
    alice, _, bob, bob_client, conversation = chat
    sent_message(alice, conversation)

    response = mark(bob_client, conversation.pk, 2)

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "seq"
    bob_membership = membership(bob, conversation)
    assert (bob_membership.delivered_seq, bob_membership.read_seq) == (0, 0)


@pytest.mark.parametrize("seq", [-1, "1.5", None, True], ids=["negative", "text", "null", "boolean"])
def test_a_seq_that_is_not_a_non_negative_integer_is_refused(chat, seq):
    alice, _, bob, bob_client, conversation = chat
    sent_message(alice, conversation)

    response = read(bob_client, conversation.pk, seq)

    assert response.status_code == 400
    assert response.json()["error"]["field"] == "seq"
    assert membership(bob, conversation).read_seq == 0
