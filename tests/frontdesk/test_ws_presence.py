"""Ephemeral signals: typing notices and online/last-seen presence."""

import pytest

from broker import events
from broker.services import people as people_service
from storage.models import User
from tests.factories import direct_conversation, group_conversation
from tests.ws import another_device, db, people, sockets  # noqa: F401  (sockets is a fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def types(received: list[dict]) -> list[str]:
    return [event["type"] for event in received]


async def test_typing_reaches_the_other_members_but_not_the_typist_or_outsiders(sockets):
    (alice, alice_token), (bob, bob_token), (carol, carol_token), (dave, dave_token) = await people(4)
    group = await db(group_conversation)(alice, bob, carol)
    with_dave = await db(direct_conversation)(alice, dave)
    a, laptop = await sockets(alice_token), await sockets(await another_device(alice))
    b, c, d = await sockets(bob_token), await sockets(carol_token), await sockets(dave_token)

    await a.send(type="typing", conversation=group.pk)

    for member in (b, c):
        assert await member.receive_type("typing") == {"type": "typing", "conversation": group.pk, "user": alice.pk}
    # Barrier: a message Alice sends next reaches Dave and her other devices after any typing
    # notice would (the laptop shares the typist's user group, so it stands for her own sockets).
    barrier = await a.send_message(with_dave.pk, "hi Dave")
    assert "typing" not in types(await laptop.receive_until_new(barrier))
    assert "typing" not in types(await d.receive_until_new(barrier))


async def test_typing_in_a_conversation_you_are_not_in_is_not_found(sockets):
    (alice, _), (bob, bob_token), (_, mallory_token) = await people(3)
    conversation = await db(direct_conversation)(alice, bob)
    b, m = await sockets(bob_token), await sockets(mallory_token)

    await m.send(type="typing", conversation=conversation.pk, ref="t1")

    error = await m.receive_type("error")
    assert (error["code"], error["frame"], error["ref"]) == ("not_found", "typing", "t1")
    assert "typing" not in types(await b.drain())


async def test_people_in_a_direct_chat_see_each_other_come_online_and_go_offline(sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    await db(direct_conversation)(alice, bob)
    b = await sockets(bob_token)

    a = await sockets(alice_token)
    assert await b.receive_type("presence") == {"type": "presence", "user": alice.pk, "online": True, "last_seen": None}

    await a.close()
    offline = await b.receive_type("presence")
    stored = await db(lambda: User.objects.get(pk=alice.pk).last_seen)()
    assert offline == {"type": "presence", "user": alice.pk, "online": False, "last_seen": events.timestamp(stored)}
    assert stored is not None


async def test_closing_one_of_two_devices_does_not_go_offline(sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    conversation = await db(direct_conversation)(alice, bob)
    b = await sockets(bob_token)
    phone = await sockets(alice_token)
    laptop = await sockets(await another_device(alice))
    assert (await b.receive_type("presence"))["online"] is True

    await phone.close()
    barrier = await laptop.send_message(conversation.pk, "still here")

    assert "presence" not in types(await b.receive_until_new(barrier))
    assert await db(lambda: User.objects.get(pk=alice.pk).last_seen)() is None


async def test_presence_is_not_shown_to_people_sharing_only_a_group(sockets):
    (alice, alice_token), (bob, bob_token), (carol, carol_token) = await people(3)
    group = await db(group_conversation)(alice, bob, carol)
    await db(direct_conversation)(alice, carol)  # Carol, unlike Bob, also chats with Alice directly
    b, c = await sockets(bob_token), await sockets(carol_token)
    await b.receive_new(seq=1)  # the group's creation notice

    await (await sockets(alice_token)).close()

    assert [e["online"] for e in await c.receive_types("presence", count=2)] == [True, False]
    barrier = await c.send_message(group.pk, "barrier")
    assert "presence" not in types(await b.receive_until_new(barrier))


async def test_presence_is_hidden_across_a_block(sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    conversation = await db(direct_conversation)(alice, bob)
    await db(people_service.block_user)(blocker=bob, user_id=alice.pk)
    b = await sockets(bob_token)

    a = await sockets(alice_token)
    await a.close()
    await db(people_service.unblock_user)(blocker=bob, user_id=alice.pk)
    barrier = await (await sockets(alice_token)).send_message(conversation.pk, "barrier")

    # While blocked, Bob heard nothing of her coming and going; unblocking, he hears how she is
    # (offline, last seen), then of her coming back.
    received = await b.receive_until_new(barrier)
    assert [(e["type"], e.get("online")) for e in received] == [("presence", False), ("presence", True),
                                                                ("message.new", None)]
    assert received[0]["last_seen"] is not None


@pytest.mark.parametrize("who_blocks", ["typist", "reader"])
async def test_typing_is_hidden_across_a_block(sockets, who_blocks):
    (alice, alice_token), (bob, bob_token), (carol, carol_token) = await people(3)
    conversation = await db(direct_conversation)(alice, bob)
    group = await db(group_conversation)(alice, bob, carol)
    blocker, blocked = (alice, bob) if who_blocks == "typist" else (bob, alice)
    await db(people_service.block_user)(blocker=blocker, user_id=blocked.pk)
    a, b, c = await sockets(alice_token), await sockets(bob_token), await sockets(carol_token)
    await b.receive_new(seq=1)

    await a.send(type="typing", conversation=conversation.pk)
    await a.send(type="typing", conversation=group.pk)

    # Carol, who blocked nobody, hears the group's notice; Bob hears neither before the barrier.
    assert (await c.receive_type("typing"))["conversation"] == group.pk
    barrier = await c.send_message(group.pk, "barrier")
    assert "typing" not in types(await b.receive_until_new(barrier))


async def test_blocking_hides_each_ones_presence_from_the_other_at_once_and_unblocking_shows_it(sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    await db(direct_conversation)(alice, bob)
    a = await sockets(alice_token)
    b = await sockets(bob_token)
    assert (await a.receive_type("presence"))["online"] is True  # Bob came online

    await db(people_service.block_user)(blocker=bob, user_id=alice.pk)

    hidden = {"type": "presence", "user": bob.pk, "online": False, "last_seen": None}
    assert await a.receive_type("presence") == hidden
    assert await b.receive_type("presence") == {**hidden, "user": alice.pk}

    await db(people_service.unblock_user)(blocker=bob, user_id=alice.pk)

    assert await a.receive_type("presence") == {**hidden, "online": True}
    assert await b.receive_type("presence") == {**hidden, "user": alice.pk, "online": True}


# --- names --------------------------------------------------------------------------------------
async def test_a_new_name_reaches_whoever_shows_it_and_nobody_else(sockets):
    from broker.services import accounts
    from tests.factories import saved_contacts

    (alice, alice_token), (bob, bob_token), (carol, carol_token), (dave, dave_token), (erin, erin_token) = \
        await people(5)
    await db(direct_conversation)(alice, bob)  # a chat
    await db(group_conversation)(carol, alice)  # a group
    await db(saved_contacts)(dave, alice)  # a saved contact, no conversation
    a1, a2 = await sockets(alice_token), await sockets(await another_device(alice))
    b, c, d, e = [await sockets(token) for token in (bob_token, carol_token, dave_token, erin_token)]

    await db(accounts.update_profile)(user=alice, display_name="Alice Liddell", about="Down the rabbit hole")

    for socket in (a1, a2, b, c, d):
        updated = await socket.receive_type("user.updated")
        assert updated["user"] == {**events.user_payload(alice), "display_name": "Alice Liddell",
                                   "about": "Down the rabbit hole"}
    assert all(event["type"] != "user.updated" for event in await e.drain())  # a stranger hears nothing


async def test_an_app_renamed_by_its_owner_or_a_person_renamed_by_an_operator_is_seen_renamed(sockets, operator):
    from django.urls import reverse

    from developer_api.services import apps
    from tests.developer_api.helpers import make_app

    (alice, alice_token), (bob, bob_token) = await people(2)
    app = await db(make_app)()
    await db(direct_conversation)(bob, app.bot)
    await db(direct_conversation)(alice, bob)
    b = await sockets(bob_token)

    await db(apps.update_app)(app=app, name="Corner Shop & Deli")
    renamed_app = await b.receive_type("user.updated")
    await db(operator.post)(reverse("admin:storage_user_change", args=[alice.pk]), {
        "phone_number": alice.phone_number, "display_name": "Alice (verified)", "about": "", "is_active": "on"})
    renamed_person = await b.receive_type("user.updated")

    assert (renamed_app["user"]["id"], renamed_app["user"]["display_name"]) == (app.bot_id, "Corner Shop & Deli")
    assert (renamed_person["user"]["id"], renamed_person["user"]["display_name"]) == (alice.pk, "Alice (verified)")
