"""Durable delivery: catch-up on connect, acknowledgements, restarts and monotonic watermarks."""

import pytest

from storage.models import Membership
from tests.factories import direct_conversation, membership
from tests.ws import db, people, simulate_restart, sockets  # noqa: F401  (sockets is a fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def watermarks(user, conversation) -> tuple[int, int]:
    member = membership(user, conversation)
    return member.delivered_seq, member.read_seq


async def test_offline_recipient_catches_up_in_order_on_connect(sockets):
    (alice, alice_token), (bob, bob_token), (carol, carol_token) = await people(3)
    with_alice = await db(direct_conversation)(alice, bob)
    with_carol = await db(direct_conversation)(carol, bob)
    a, c = await sockets(alice_token), await sockets(carol_token)
    for text in ("a1", "a2", "a3"):
        await a.send_message(with_alice.pk, text)
    for text in ("c1", "c2"):
        await c.send_message(with_carol.pk, text)

    b = await sockets(bob_token)

    # Catch-up comes first, before any live event, conversation by conversation in seq order.
    first = [await b.receive() for _ in range(5)]
    assert all(e["type"] == "message.new" for e in first)
    by_conversation = {}
    for event in first:
        by_conversation.setdefault(event["message"]["conversation"], []).append(
            (event["message"]["seq"], event["message"]["text"])
        )
    assert by_conversation == {
        with_alice.pk: [(1, "a1"), (2, "a2"), (3, "a3")],
        with_carol.pk: [(1, "c1"), (2, "c2")],
    }


async def test_acknowledged_messages_are_not_sent_again_on_reconnect(sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    conversation = await db(direct_conversation)(alice, bob)
    a = await sockets(alice_token)
    for text in ("one", "two", "three"):
        await a.send_message(conversation.pk, text)
    b = await sockets(bob_token)
    await b.receive_types("message.new", count=3)
    await b.send(type="ack", conversation=conversation.pk, seq=2)  # the app showed two of them
    await a.receive_type("message.status")
    await b.close()

    again = await sockets(bob_token)
    await a.send_message(conversation.pk, "four")

    news = await again.receive_types("message.new", count=2)
    assert [n["message"]["text"] for n in news] == ["three", "four"]


async def test_a_message_reported_sent_survives_a_restart(sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    conversation = await db(direct_conversation)(alice, bob)
    a, b = await sockets(alice_token), await sockets(bob_token)
    # Bob's device may have got the live event, but it crashed before acknowledging it.
    before = await a.send_message(conversation.pk, "before the restart")
    await b.receive_type("message.new")

    await simulate_restart(a, b)

    b = await sockets(bob_token)
    assert await b.receive() == {"type": "message.new", "message": before}


async def test_a_message_whose_live_event_was_lost_arrives_on_reconnect(sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    conversation = await db(direct_conversation)(alice, bob)
    a, b = await sockets(alice_token), await sockets(bob_token)
    # The layer restarts under open connections: they no longer hear anything (the doorbell is
    # broken) but the database still takes messages.
    await simulate_restart()

    lost = await (await sockets(alice_token)).send_message(conversation.pk, "nobody rang")
    await b.close()

    b = await sockets(bob_token)
    assert await b.receive() == {"type": "message.new", "message": lost}


async def test_every_message_arrives_exactly_once_on_screen_through_disconnects(sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    conversation = await db(direct_conversation)(alice, bob)
    a = await sockets(alice_token)
    screen: dict[int, str] = {}  # what Bob's app shows, deduplicated by seq as clients do
    sent: list[dict] = []

    async def show_everything_sent(client):
        while len(screen) < len(sent):
            message = (await client.receive_type("message.new"))["message"]
            screen.setdefault(message["seq"], message["text"])

    # Bob is online for some messages, offline for others, and acknowledges some of what he got.
    b = None
    for n, online in enumerate([1, 0, 0, 1, 1, 0, 1, 0, 1, 1]):
        if online and b is None:
            b = await sockets(bob_token)
        if not online and b is not None:
            await b.close()
            b = None
        sent.append(await a.send_message(conversation.pk, f"m{n}"))
        if b is not None:
            await show_everything_sent(b)
            if n % 2:
                await b.send(type="ack", conversation=conversation.pk, seq=max(screen))
                await a.receive_type("message.status")

    assert screen == {m["seq"]: m["text"] for m in sent}
    assert list(screen) == sorted(screen)  # shown in the order they were sent
    # The last round acknowledged everything: a reconnect brings nothing old back.
    assert await db(watermarks)(bob, conversation) == (len(sent), 0)
    await b.close()
    b = await sockets(bob_token)
    await a.send_message(conversation.pk, "after everything")
    assert (await b.receive_type("message.new"))["message"]["text"] == "after everything"


async def test_acknowledging_an_older_seq_changes_nothing_and_tells_nobody(sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    conversation = await db(direct_conversation)(alice, bob)
    a, b = await sockets(alice_token), await sockets(bob_token)
    for text in ("one", "two", "three"):
        await a.send_message(conversation.pk, text)
    await b.send(type="ack", conversation=conversation.pk, seq=3)
    assert (await a.receive_type("message.status"))["seq"] == 3

    await b.send(type="ack", conversation=conversation.pk, seq=1)
    await b.send(type="read", conversation=conversation.pk, seq=2)
    await b.send(type="read", conversation=conversation.pk, seq=1)
    await b.send(type="read", conversation=conversation.pk, seq=3)

    # The two advancing reads are all Alice hears of: the stale ack and read said nothing new.
    statuses = await a.receive_types("message.status", count=2)
    assert [(s["status"], s["seq"]) for s in statuses] == [("read", 2), ("read", 3)]
    assert await db(watermarks)(bob, conversation) == (3, 3)


async def test_reading_implies_delivery(sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    conversation = await db(direct_conversation)(alice, bob)
    a, b = await sockets(alice_token), await sockets(bob_token)
    await a.send_message(conversation.pk, "one")
    await a.send_message(conversation.pk, "two")

    await b.send(type="read", conversation=conversation.pk, seq=2)
    await a.receive_type("message.status")

    assert await db(watermarks)(bob, conversation) == (2, 2)
    await b.close()
    b = await sockets(bob_token)
    await a.send_message(conversation.pk, "three")
    assert (await b.receive_type("message.new"))["message"]["seq"] == 3  # nothing read comes back


async def test_acknowledging_past_the_newest_message_is_refused(sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    conversation = await db(direct_conversation)(alice, bob)
    a, b = await sockets(alice_token), await sockets(bob_token)
    await a.send_message(conversation.pk, "only one")

    for frame_type in ("ack", "read"):
        await b.send(type=frame_type, conversation=conversation.pk, seq=2, ref=f"{frame_type}-2")
        error = await b.receive_type("error")
        assert (error["code"], error["frame"], error["ref"]) == ("invalid", frame_type, f"{frame_type}-2")
        assert error["field"] == "seq"

    assert await db(watermarks)(bob, conversation) == (0, 0)


async def test_acknowledging_in_a_conversation_you_are_not_in_is_not_found(sockets):
    (alice, alice_token), (bob, _), (_, mallory_token) = await people(3)
    conversation = await db(direct_conversation)(alice, bob)
    a, m = await sockets(alice_token), await sockets(mallory_token)
    await a.send_message(conversation.pk, "private")

    await m.send(type="read", conversation=conversation.pk, seq=1)

    error = await m.receive_type("error")
    assert (error["code"], error["frame"], error["field"]) == ("not_found", "read", "conversation")
    assert not await db(Membership.objects.filter(conversation=conversation, read_seq__gt=1).exists)()
