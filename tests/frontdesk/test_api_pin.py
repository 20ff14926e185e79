"""Pinning chats (PUT / DELETE conversations/{id}/pin): a pinned chat heads the list whatever comes
in elsewhere, the latest pinned first, at most three at once, on every device of the person who
pinned it (told at once), and nobody else's list changes."""

import pytest

from broker.services import conversations
from tests.factories import direct_conversation, group_conversation, sent_message, user_with_token
from tests.openapi import SchemaCheckedClient
from tests.ws import db, people, sockets  # noqa: F401  (sockets is a fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def pin(token: str, conversation_id: int):
    return SchemaCheckedClient(token).put(f"/api/v1/conversations/{conversation_id}/pin")


def unpin(token: str, conversation_id: int):
    return SchemaCheckedClient(token).delete(f"/api/v1/conversations/{conversation_id}/pin")


def listed(token: str) -> list[int]:
    response = SchemaCheckedClient(token).get("/api/v1/conversations")
    assert response.status_code == 200, response.content
    return [c["id"] for c in response.json()]


def test_pinned_chats_head_the_list_latest_pinned_first_until_unpinned():
    alice, alice_token = user_with_token()
    others = [user_with_token()[0] for _ in range(4)]
    chats = [direct_conversation(alice, other) for other in others]
    for other, chat in zip(others, chats):
        sent_message(other, chat, "hi")
    assert listed(alice_token) == [c.pk for c in reversed(chats)]

    first = pin(alice_token, chats[0].pk)
    pin(alice_token, chats[1].pk)
    sent_message(others[3], chats[3], "news")  # activity elsewhere does not move a pinned chat down

    assert first.status_code == 200 and first.json()["pinned_at"] is not None
    assert listed(alice_token) == [chats[1].pk, chats[0].pk, chats[3].pk, chats[2].pk]
    assert (pin(alice_token, chats[0].pk).status_code, listed(alice_token)[:2]) == (200, [chats[1].pk, chats[0].pk])
    assert unpin(alice_token, chats[1].pk).status_code == 204
    assert listed(alice_token) == [chats[0].pk, chats[3].pk, chats[2].pk, chats[1].pk]
    assert unpin(alice_token, chats[1].pk).status_code == 204  # again: nothing changes


def test_at_most_three_are_pinned_and_a_fourth_is_refused():
    alice, alice_token = user_with_token()
    chats = [direct_conversation(alice, user_with_token()[0]) for _ in range(4)]
    for chat in chats[:3]:
        assert pin(alice_token, chat.pk).status_code == 200

    refused = pin(alice_token, chats[3].pk)

    assert (refused.status_code, refused.json()["error"]["code"], refused.json()["error"]["field"]) == (
        409, "conflict", "conversation")
    assert SchemaCheckedClient(alice_token).get(f"/api/v1/conversations/{chats[3].pk}").json()["pinned_at"] is None
    unpin(alice_token, chats[0].pk)
    assert pin(alice_token, chats[3].pk).status_code == 200


def test_only_a_member_pins_and_leaving_a_group_unpins_it():
    alice, alice_token = user_with_token()
    bob, bob_token = user_with_token()
    group = group_conversation(alice, bob, title="Trip")
    assert pin(bob_token, group.pk).status_code == 200
    conversations.remove_member(actor=bob, conversation_id=group.pk, user_id=bob.pk)

    for response in (pin(bob_token, group.pk), unpin(bob_token, group.pk)):
        assert (response.status_code, response.json()["error"]["field"]) == (403, "conversation")
    assert SchemaCheckedClient(bob_token).get(f"/api/v1/conversations/{group.pk}").json()["pinned_at"] is None
    stranger = pin(user_with_token()[1], group.pk)
    assert (stranger.status_code, stranger.json()["error"]["code"]) == (404, "not_found")


async def test_the_pinners_other_devices_are_told_at_once(sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    chat = await db(direct_conversation)(alice, bob)
    laptop, b = await sockets(alice_token), await sockets(bob_token)

    pinned_at = (await db(pin)(alice_token, chat.pk)).json()["pinned_at"]
    assert await laptop.receive_type("conversation.pinned") == {
        "type": "conversation.pinned", "conversation": chat.pk, "pinned_at": pinned_at}
    await db(unpin)(alice_token, chat.pk)
    assert await laptop.receive_type("conversation.pinned") == {
        "type": "conversation.pinned", "conversation": chat.pk, "pinned_at": None}
    assert await b.nothing_more()
