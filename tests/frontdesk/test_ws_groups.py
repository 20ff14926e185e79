"""Groups as their members see them: membership changes arrive as system messages, in order."""

import pytest

from broker.services import conversations
from tests.factories import direct_conversation, group_conversation
from tests.ws import db, people, sockets  # noqa: F401  (sockets is a fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def system_event(event: dict) -> dict:
    assert event["type"] == "message.new" and event["message"]["kind"] == "system", event
    return event["message"]["event"]


async def test_everyone_hears_of_a_new_group_including_its_creator(sockets):
    (alice, alice_token), (bob, bob_token), (carol, carol_token) = await people(3)
    a, b, c = await sockets(alice_token), await sockets(bob_token), await sockets(carol_token)

    group = await db(group_conversation)(alice, bob, carol, title="Climbing")

    for member in (a, b, c):
        new = await member.receive_type("message.new")
        assert new["message"]["conversation"] == group.pk and new["message"]["seq"] == 1
        assert new["message"]["sender"] is None
        assert system_event(new) == {
            "action": "group_created", "by": alice.pk, "title": "Climbing", "members": [bob.pk, carol.pk],
        }


async def test_members_added_by_an_admin_are_announced_to_everyone_including_them(sockets):
    (alice, alice_token), (bob, bob_token), (dave, dave_token) = await people(3)
    group = await db(group_conversation)(alice, bob)
    a, b, d = await sockets(alice_token), await sockets(bob_token), await sockets(dave_token)
    await a.send_message(group.pk, "before Dave")

    await db(conversations.add_members)(actor=alice, conversation_id=group.pk, user_ids=[dave.pk])

    for member in (a, b, d):
        notice = await member.receive_new(seq=3)
        assert system_event(notice) == {"action": "member_added", "by": alice.pk, "user": dave.pk}
    # Dave now takes part like anyone else.
    reply = await d.send_message(group.pk, "hi, I'm Dave")
    assert (await b.receive_type("message.new"))["message"] == reply


async def test_an_added_member_catches_up_from_their_arrival_not_older_history(sockets):
    (alice, alice_token), (bob, _), (dave, dave_token) = await people(3)
    group = await db(group_conversation)(alice, bob)
    a = await sockets(alice_token)
    await a.send_message(group.pk, "secret plans")
    await db(conversations.add_members)(actor=alice, conversation_id=group.pk, user_ids=[dave.pk])
    welcome = await a.send_message(group.pk, "welcome Dave")

    d = await sockets(dave_token)

    caught_up = [await d.receive(), await d.receive()]
    assert [(e["type"], e["message"]["seq"]) for e in caught_up] == [("message.new", 3), ("message.new", 4)]
    assert system_event(caught_up[0])["action"] == "member_added"
    assert caught_up[1]["message"] == welcome


async def test_a_removed_member_gets_the_removal_notice_and_nothing_after_it(sockets):
    (alice, alice_token), (bob, bob_token), (carol, carol_token) = await people(3)
    group = await db(group_conversation)(alice, bob, carol)
    with_carol = await db(direct_conversation)(bob, carol)
    a, b, c = await sockets(alice_token), await sockets(bob_token), await sockets(carol_token)

    await db(conversations.remove_member)(actor=alice, conversation_id=group.pk, user_id=carol.pk)

    for member in (a, b, c):
        notice = await member.receive_new(seq=2)
        assert system_event(notice) == {"action": "member_removed", "by": alice.pk, "user": carol.pk}
    await b.send_message(group.pk, "now without Carol")
    await b.send_message(with_carol.pk, "psst")  # reaches Carol after anything of the group would
    news = await c.receive_types("message.new", count=1)
    assert news[0]["message"]["text"] == "psst"
    # Carol can no longer write into the group either.
    await c.send(type="message.send", client_id="late", conversation=group.pk, text="wait")
    assert (await c.receive_type("error"))["code"] == "not_found"


async def test_a_member_who_leaves_is_announced_as_leaving(sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    group = await db(group_conversation)(alice, bob)
    a = await sockets(alice_token)

    await db(conversations.remove_member)(actor=bob, conversation_id=group.pk, user_id=bob.pk)

    notice = await a.receive_type("message.new")
    assert system_event(notice) == {"action": "member_left", "by": bob.pk, "user": bob.pk}
    assert notice["message"]["text"].endswith("left")
