"""Groups as their members see them: membership changes arrive as system messages, in order."""

import pytest

from broker.services import conversations
from tests.factories import direct_conversation, group_conversation, saved_contacts, sent_message
from tests.openapi import SchemaCheckedClient
from tests.ws import another_device, db, people, sockets  # noqa: F401  (sockets is a fixture)

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
    await db(saved_contacts)(alice, dave)

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
    await db(saved_contacts)(alice, dave)
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
    # Carol can no longer write into the group either, nor be seen typing there.
    await c.send(type="message.send", client_id="late", conversation=group.pk, text="wait")
    refused = await c.receive_type("error")
    assert (refused["code"], refused["field"]) == ("forbidden", "conversation")
    assert refused["message"] == "You are no longer a participant in this group."
    await c.send(type="typing", conversation=group.pk)
    assert (await c.receive_type("error"))["code"] == "forbidden"
    assert not [e for e in await b.drain(timeout=0.2) if e["type"] == "typing"]


async def test_a_member_who_leaves_is_announced_as_leaving(sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    group = await db(group_conversation)(alice, bob)
    a = await sockets(alice_token)

    await db(conversations.remove_member)(actor=bob, conversation_id=group.pk, user_id=bob.pk)

    notice = await a.receive_type("message.new")
    assert system_event(notice) == {"action": "member_left", "by": bob.pk, "user": bob.pk}
    assert notice["message"]["text"].endswith("left")


async def test_someone_removed_while_offline_gets_what_came_before_and_the_notice_at_their_next_connect(sockets):
    (alice, alice_token), (bob, bob_token), (carol, carol_token) = await people(3)
    group = await db(group_conversation)(alice, bob, carol)
    a = await sockets(alice_token)
    for text in ("for Carol too", "still for Carol"):
        await a.send_message(group.pk, text)
    await db(conversations.remove_member)(actor=alice, conversation_id=group.pk, user_id=carol.pk)
    # Carol must be offline for all of it, her live copies included: with the Redis layer a process
    # matches a published event to its connections when it reads it, so a socket opened before the
    # read still gets it live (at least once: duplicates of the catch-up). Alice hearing the notice
    # live means this process has read it and everything published before it.
    await a.receive_new(4)
    await a.send_message(group.pk, "after Carol")

    c = await sockets(carol_token)

    news = [e["message"] for e in await c.drain(timeout=0.5) if e["type"] == "message.new"]
    assert [(m["seq"], m["text"]) for m in news[:3]] == [(1, news[0]["text"]), (2, "for Carol too"), (3, "still for Carol")]
    assert [m["seq"] for m in news] == [1, 2, 3, 4]
    assert system_event({"type": "message.new", "message": news[3]}) == {
        "action": "member_removed", "by": alice.pk, "user": carol.pk}
    # Acknowledged as any backlog is; then it is not sent again.
    await c.send(type="ack", conversation=group.pk, seq=4, ref="done")
    await c.close()
    again = await sockets(carol_token)
    assert [e for e in await again.drain(timeout=0.3) if e["type"] in ("message.new", "error")] == []


async def test_a_device_offline_when_its_user_left_learns_of_it_and_acks_part_way(sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    group = await db(group_conversation)(alice, bob)
    a = await sockets(alice_token)
    await a.send_message(group.pk, "before Bob left")
    await db(conversations.remove_member)(actor=bob, conversation_id=group.pk, user_id=bob.pk)

    phone = await sockets(bob_token)
    await phone.receive_types("message.new", count=3)
    await phone.send(type="ack", conversation=group.pk, seq=2)
    await phone.send(type="ack", conversation=group.pk, seq=4, ref="past it")
    assert (await phone.receive_type("error"))[("field")] == "seq"
    await phone.close()

    laptop = await sockets(bob_token)
    news = await laptop.receive_types("message.new", count=1)
    assert system_event(news[0]) == {"action": "member_left", "by": bob.pk, "user": bob.pk}
    assert news[0]["message"]["seq"] == 3


async def test_receipts_for_a_group_one_left_count_up_to_the_notice_and_repeat_without_error(sockets):
    """Over the socket as over REST: a former member acknowledges and reads what they may see of the
    group (their other devices hear of it, the members do not); the same receipt once it is all
    acknowledged is no error; one past the notice is refused, naming seq."""
    (alice, alice_token), (bob, bob_token) = await people(2)
    group = await db(group_conversation)(alice, bob)
    a, phone, laptop = await sockets(alice_token), await sockets(bob_token), await sockets(bob_token)
    await a.send_message(group.pk, "before Bob went")
    await db(conversations.remove_member)(actor=bob, conversation_id=group.pk, user_id=bob.pk)
    await phone.receive_new(seq=3)
    await a.receive_new(seq=3)

    await phone.send(type="read", conversation=group.pk, seq=3, ref="read it")
    told = await laptop.receive_type("message.status")
    assert (told["conversation"], told["seq"], told["status"], told["user"]) == (group.pk, 3, "read", bob.pk)
    for frame in ("ack", "read", "ack"):  # all of it acknowledged already: changes nothing, no error
        await phone.send(type=frame, conversation=group.pk, seq=3, ref=f"again {frame}")
    await phone.send(type="ack", conversation=group.pk, seq=4, ref="past it")
    refused = await phone.receive_type("error")
    assert (refused["ref"], refused["code"], refused["field"]) == ("past it", "invalid", "seq")
    assert not [e for e in await phone.drain() if e["type"] == "error"]
    assert not [e for e in await a.drain() if e["type"] == "message.status" and e["user"] == bob.pk]
    shown = await db(lambda: SchemaCheckedClient(bob_token).get(f"/api/v1/conversations/{group.pk}").json())()
    assert (shown["left"], shown["unread_count"], shown["read_seq"]) == (True, 0, 3)

    await phone.close()
    again = await sockets(bob_token)  # all received: nothing of it is sent again
    assert [e for e in await again.drain(timeout=0.3) if e["type"] in ("message.new", "error")] == []


async def test_someone_added_back_is_sent_from_their_return_not_what_they_missed_before(sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    group = await db(group_conversation)(alice, bob)
    a = await sockets(alice_token)
    await db(conversations.remove_member)(actor=alice, conversation_id=group.pk, user_id=bob.pk)
    await a.send_message(group.pk, "while Bob was out")
    await db(conversations.add_members)(actor=alice, conversation_id=group.pk, user_ids=[bob.pk])
    # Bob must be offline for all of it, the live copy of his removal notice included: with the
    # Redis layer a process matches a published event to its connections when it reads it, so a
    # socket opened before the read still gets it. Alice hearing the notice of his return live means
    # this process has read it and everything published before it.
    await a.receive_new(4)
    await a.send_message(group.pk, "welcome back")

    b = await sockets(bob_token)

    news = [e["message"] for e in await b.drain(timeout=0.5) if e["type"] == "message.new"]
    # "welcome back" may also come live after the catch-up, as it may be read after Bob joined
    # (at least once on the wire); nothing from before his return, neither way.
    assert [m["seq"] for m in news] in ([4, 5], [4, 5, 5])
    assert system_event({"type": "message.new", "message": news[0]})["action"] == "member_added"


async def test_deleting_a_left_group_takes_it_off_the_users_other_devices_at_once_and_tells_nobody_else(sockets):
    """"Delete chat" on one device: another open there kept showing the group until it next fetched
    the list. Every socket of the user's now hears of it; the group's members hear nothing."""
    (alice, alice_token), (bob, phone_token), (carol, carol_token) = await people(3)
    group = await db(group_conversation)(alice, bob, carol, title="Climbing")
    await db(conversations.remove_member)(actor=bob, conversation_id=group.pk, user_id=bob.pk)
    phone, laptop = await sockets(phone_token), await sockets(await another_device(bob))
    a, c = await sockets(alice_token), await sockets(carol_token)
    for device in (phone, laptop, a, c):
        await device.drain()

    deleted = await db(lambda: SchemaCheckedClient(phone_token).delete(f"/api/v1/conversations/{group.pk}"))()

    assert deleted.status_code == 204
    for device in (laptop, phone):
        assert await device.receive_type("conversation.deleted") == {"type": "conversation.deleted",
                                                                      "conversation": group.pk}
    # Events reach a socket in the order they were published: this comes after any about the deletion.
    later = await db(sent_message)(alice, group, "still climbing")
    for member in (a, c):
        assert "conversation.deleted" not in [e["type"] for e in await member.receive_until_new({"id": later.pk})]
    assert [e for e in await laptop.drain() if e["type"] == "conversation.deleted"] == []  # told once


def history_statuses(token: str, conversation_id: int) -> dict[int, str]:
    """Each message's status as GET messages shows it, by seq."""
    page = SchemaCheckedClient(token).get(f"/api/v1/conversations/{conversation_id}/messages").json()
    return {message["seq"]: message["status"] for message in page["results"]}


async def test_a_message_sent_to_a_group_with_nobody_else_in_it_stays_sent_in_history(sockets):
    (alice, alice_token), (bob, _) = await people(2)
    group = await db(group_conversation)(alice, bob)
    await db(conversations.remove_member)(actor=bob, conversation_id=group.pk, user_id=bob.pk)
    a = await sockets(alice_token)

    sent = await a.send_message(group.pk, "anyone?")

    assert sent["status"] == "sent"
    assert (await db(history_statuses)(alice_token, group.pk))[sent["seq"]] == "sent"


async def test_everyone_hears_live_who_is_made_admin(sockets):
    (alice, alice_token), (bob, bob_token), (carol, carol_token) = await people(3)
    group = await db(group_conversation)(alice, bob, carol)
    a, b, c = await sockets(alice_token), await sockets(bob_token), await sockets(carol_token)

    await db(conversations.set_role)(actor=alice, conversation_id=group.pk, user_id=bob.pk, role="admin")

    for member in (a, b, c):
        assert system_event(await member.receive_new(seq=2)) == {"action": "admin_added", "by": alice.pk, "user": bob.pk}
