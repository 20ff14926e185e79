"""Reacting to a message with an emoji (PUT / DELETE conversations/{id}/messages/{seq}/reaction): one
reaction per person per message, every member's devices told at once, each message's reactions in
the history, and none left on a message deleted for everyone or taken down."""

import pytest

from broker.services import conversations, moderation, people as people_service
from storage.models import Message
from tests.factories import direct_conversation, group_conversation, saved_contacts, sent_message, user_with_token
from tests.openapi import SchemaCheckedClient
from tests.ws import db, people, sockets  # noqa: F401  (sockets is a fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def url(conversation_id: int, seq: int) -> str:
    return f"/api/v1/conversations/{conversation_id}/messages/{seq}/reaction"


def react(token: str, conversation_id: int, seq: int, body: object):
    return SchemaCheckedClient(token).put(url(conversation_id, seq), body, format="json")


def unreact(token: str, conversation_id: int, seq: int):
    return SchemaCheckedClient(token).delete(url(conversation_id, seq))


def reactions_in_history(token: str, conversation_id: int) -> dict[int, list[tuple[str, int]]]:
    response = SchemaCheckedClient(token).get(f"/api/v1/conversations/{conversation_id}/messages")
    assert response.status_code == 200, response.content
    return {m["seq"]: [(r["emoji"], r["user"]) for r in m["reactions"]] for m in response.json()["results"]}


def error_of(response) -> tuple[int, str, str | None]:
    error = response.json()["error"]
    return response.status_code, error["code"], error.get("field")


async def test_every_member_sees_a_reaction_live_and_in_the_history(sockets):
    (alice, alice_token), (bob, bob_token), (carol, carol_token) = await people(3)
    group = await db(group_conversation)(alice, bob, carol, title="Trip")
    a, b, c = await sockets(alice_token), await sockets(bob_token), await sockets(carol_token)
    photo = await a.send_message(group.pk, "we made it to the top")
    assert photo["reactions"] == []  # a new message has none
    for member in (b, c):
        assert (await member.receive_new(photo["seq"]))["message"]["reactions"] == []

    response = await db(react)(bob_token, group.pk, photo["seq"], {"emoji": "❤️"})

    assert response.status_code == 200, response.content
    assert (response.json()["seq"], response.json()["reactions"]) == (photo["seq"], [{"emoji": "❤️", "user": bob.pk}])
    heart = {"type": "message.reaction", "conversation": group.pk, "seq": photo["seq"], "user": bob.pk, "emoji": "❤️"}
    for member in (a, b, c):
        assert await member.receive_type("message.reaction") == heart
    assert (await db(reactions_in_history)(carol_token, group.pk))[photo["seq"]] == [("❤️", bob.pk)]

    # Reacting again replaces it; the same emoji again tells nobody anything.
    assert (await db(react)(bob_token, group.pk, photo["seq"], {"emoji": "😮"})).json()["reactions"] == [
        {"emoji": "😮", "user": bob.pk}]
    for member in (a, b, c):
        assert (await member.receive_type("message.reaction"))["emoji"] == "😮"
    assert (await db(react)(bob_token, group.pk, photo["seq"], {"emoji": "😮"})).status_code == 200
    assert await a.nothing_more()

    assert (await db(unreact)(bob_token, group.pk, photo["seq"])).status_code == 204
    for member in (a, b, c):
        assert await member.receive_type("message.reaction") == {**heart, "emoji": None}
    assert (await db(reactions_in_history)(alice_token, group.pk))[photo["seq"]] == []
    # None there: 204, and nobody is told.
    assert (await db(unreact)(bob_token, group.pk, photo["seq"])).status_code == 204
    assert await a.nothing_more()


def test_one_reaction_per_person_and_each_message_has_its_own():
    alice, alice_token = user_with_token()
    bob, bob_token = user_with_token()
    chat = direct_conversation(alice, bob)
    first, second = sent_message(alice, chat, "first"), sent_message(bob, chat, "second")

    assert react(alice_token, chat.pk, first.seq, {"emoji": "👍"}).status_code == 200
    assert react(bob_token, chat.pk, first.seq, {"emoji": "😂"}).status_code == 200
    assert react(alice_token, chat.pk, first.seq, {"emoji": "🙏"}).status_code == 200
    assert react(alice_token, chat.pk, second.seq, {"emoji": "👍🏽"}).status_code == 200  # a skin tone is one emoji

    assert reactions_in_history(bob_token, chat.pk) == {
        first.seq: [("🙏", alice.pk), ("😂", bob.pk)], second.seq: [("👍🏽", alice.pk)]}


@pytest.mark.parametrize("body", [
    {"emoji": "a"}, {"emoji": "👍👍"}, {"emoji": "👍 "}, {"emoji": ""}, {"emoji": 42}, {"emoji": None}, {},
    {"emoji": "🙂" * 40},
])
def test_anything_but_one_emoji_is_refused_naming_it(body):
    alice, alice_token = user_with_token()
    chat = direct_conversation(alice, user_with_token()[0])
    message = sent_message(alice, chat)

    response = react(alice_token, chat.pk, message.seq, body)

    assert error_of(response) == (400, "invalid", "emoji")
    assert reactions_in_history(alice_token, chat.pk)[message.seq] == []


def test_notices_removed_messages_and_missing_ones_take_no_reaction():
    alice, alice_token = user_with_token()
    bob, bob_token = user_with_token()
    saved_contacts(alice, bob)
    group = group_conversation(alice, bob)
    notice = Message.objects.get(conversation=group, kind=Message.Kind.SYSTEM)
    spam = sent_message(bob, group, "buy cheap watches")
    moderation.take_down(message_id=spam.pk)

    assert error_of(react(alice_token, group.pk, notice.seq, {"emoji": "👍"})) == (403, "forbidden", "seq")
    assert error_of(react(alice_token, group.pk, spam.seq, {"emoji": "👍"})) == (403, "forbidden", "seq")
    assert error_of(react(alice_token, group.pk, 999, {"emoji": "👍"})) == (404, "not_found", "seq")
    assert error_of(unreact(alice_token, group.pk, 999)) == (404, "not_found", "seq")
    stranger_token = user_with_token()[1]
    assert error_of(react(stranger_token, group.pk, spam.seq, {"emoji": "👍"})) == (404, "not_found", "conversation")


def test_deleting_for_everyone_or_a_take_down_removes_the_reactions():
    alice, alice_token = user_with_token()
    bob, bob_token = user_with_token()
    chat = direct_conversation(alice, bob)
    oops, spam = sent_message(alice, chat, "wrong chat"), sent_message(alice, chat, "cheap watches")
    for message in (oops, spam):
        assert react(bob_token, chat.pk, message.seq, {"emoji": "😂"}).status_code == 200

    assert SchemaCheckedClient(alice_token).delete(f"/api/v1/conversations/{chat.pk}/messages/{oops.seq}").status_code == 204
    moderation.take_down(message_id=spam.pk)

    shown = reactions_in_history(bob_token, chat.pk)
    assert (shown[oops.seq], shown[spam.seq]) == ([], [])
    assert error_of(react(bob_token, chat.pk, oops.seq, {"emoji": "😂"})) == (403, "forbidden", "seq")


def test_a_former_member_cannot_react_and_does_not_see_reactions_made_after_they_left():
    alice, alice_token = user_with_token()
    bob, bob_token = user_with_token()
    saved_contacts(alice, bob)
    group = group_conversation(alice, bob)
    message = sent_message(alice, group, "who is coming?")
    assert react(bob_token, group.pk, message.seq, {"emoji": "👍"}).status_code == 200
    conversations.remove_member(actor=bob, conversation_id=group.pk, user_id=bob.pk)

    assert error_of(react(bob_token, group.pk, message.seq, {"emoji": "😢"})) == (403, "forbidden", "conversation")
    assert error_of(unreact(bob_token, group.pk, message.seq)) == (403, "forbidden", "conversation")
    assert react(alice_token, group.pk, message.seq, {"emoji": "🙏"}).status_code == 200

    assert reactions_in_history(bob_token, group.pk)[message.seq] == [("👍", bob.pk)]
    assert reactions_in_history(alice_token, group.pk)[message.seq] == [("👍", bob.pk), ("🙏", alice.pk)]


def test_a_block_in_a_direct_chat_stops_reactions_both_ways():
    alice, alice_token = user_with_token()
    bob, bob_token = user_with_token()
    chat = direct_conversation(alice, bob)
    message = sent_message(alice, chat)
    people_service.block_user(blocker=alice, user_id=bob.pk)

    assert error_of(react(bob_token, chat.pk, message.seq, {"emoji": "👍"})) == (403, "blocked", "conversation")
    assert error_of(react(alice_token, chat.pk, message.seq, {"emoji": "👍"})) == (403, "blocked", "conversation")
    assert reactions_in_history(alice_token, chat.pk)[message.seq] == []


async def test_a_device_that_was_away_catches_up_on_a_message_with_its_reactions(sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    chat = await db(direct_conversation)(alice, bob)
    a = await sockets(alice_token)
    sent = await a.send_message(chat.pk, "dinner at 8?")
    assert (await db(react)(alice_token, chat.pk, sent["seq"], {"emoji": "🙏"})).status_code == 200

    b = await sockets(bob_token)

    assert (await b.receive_new(sent["seq"]))["message"]["reactions"] == [{"emoji": "🙏", "user": alice.pk}]
