"""Sending over the websocket: replies, fan-out to devices, receipts, retries, refusals."""

import asyncio

import pytest

from broker.services import people as people_service
from storage.models import Message
from tests.factories import direct_conversation, group_conversation, membership
from tests.ws import another_device, db, people, sockets  # noqa: F401  (sockets is a fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def stored_texts(conversation_id: int) -> list[str]:
    return list(Message.objects.filter(conversation_id=conversation_id).order_by("seq").values_list("text", flat=True))


async def test_message_goes_sent_delivered_read(sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    conversation = await db(direct_conversation)(alice, bob)
    a, b = await sockets(alice_token), await sockets(bob_token)

    await a.send(type="message.send", client_id="c1", conversation=conversation.pk, text="hello")
    sent = await a.receive_type("message.sent")
    assert sent["client_id"] == "c1"
    assert sent["message"]["seq"] == 1 and sent["message"]["status"] == "sent" and sent["message"]["sender"] == alice.pk

    new = await b.receive_type("message.new")
    assert new["message"] == sent["message"]

    await b.send(type="ack", conversation=conversation.pk, seq=1)
    assert await a.receive_type("message.status") == {
        "type": "message.status", "conversation": conversation.pk, "seq": 1, "status": "delivered", "user": bob.pk,
    }
    await b.send(type="read", conversation=conversation.pk, seq=1)
    assert await a.receive_type("message.status") == {
        "type": "message.status", "conversation": conversation.pk, "seq": 1, "status": "read", "user": bob.pk,
    }


async def test_sending_device_gets_sent_and_the_senders_other_devices_get_new(sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    conversation = await db(direct_conversation)(alice, bob)
    phone, laptop = await sockets(alice_token), await sockets(await another_device(alice))
    b = await sockets(bob_token)

    message = await phone.send_message(conversation.pk, "from my phone")

    assert (await laptop.receive_type("message.new"))["message"] == message
    # Bob's reply reaches the phone after any copy of its own message would have.
    reply = await b.send_message(conversation.pk, "got it")
    received = await phone.receive_until_new(reply)
    assert [e["message"] for e in received if e["type"] == "message.new"] == [reply]


async def test_receipts_reach_the_readers_other_devices(sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    conversation = await db(direct_conversation)(alice, bob)
    a = await sockets(alice_token)
    bob_phone, bob_laptop = await sockets(bob_token), await sockets(await another_device(bob))
    await a.send_message(conversation.pk)

    await bob_phone.send(type="read", conversation=conversation.pk, seq=1)

    status = await bob_laptop.receive_type("message.status")
    assert (status["status"], status["seq"], status["user"]) == ("read", 1, bob.pk)


async def test_group_message_reaches_every_member_and_each_receipt_reaches_the_sender(sockets):
    (alice, alice_token), (bob, bob_token), (carol, carol_token) = await people(3)
    group = await db(group_conversation)(alice, bob, carol)
    a, b, c = await sockets(alice_token), await sockets(bob_token), await sockets(carol_token)

    message = await a.send_message(group.pk, "hi all")
    for member in (b, c):
        news = await member.receive_types("message.new", count=2)  # the group's creation notice, then this
        assert [n["message"]["seq"] for n in news] == [1, message["seq"]]
        await member.send(type="ack", conversation=group.pk, seq=message["seq"])

    # Alice made the group, so she had seen its creation notice: only the others' receipts come.
    statuses = await a.receive_types("message.status", count=2)
    assert {(s["user"], s["status"], s["seq"]) for s in statuses} == {
        (bob.pk, "delivered", message["seq"]), (carol.pk, "delivered", message["seq"]),
    }


async def test_retried_client_id_returns_the_same_message_and_stores_one(sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    conversation = await db(direct_conversation)(alice, bob)
    a, b = await sockets(alice_token), await sockets(bob_token)

    first = await a.send_message(conversation.pk, "once", client_id="retry-me")
    again = await a.send_message(conversation.pk, "once", client_id="retry-me")

    assert again == first
    assert await db(stored_texts)(conversation.pk) == ["once"]
    # Bob hears of it once: the next message.new after it is a different message.
    await a.send_message(conversation.pk, "next")
    news = await b.receive_types("message.new", count=2)
    assert [n["message"]["text"] for n in news] == ["once", "next"]


async def test_retry_after_delivery_reports_the_current_status(sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    conversation = await db(direct_conversation)(alice, bob)
    a, b = await sockets(alice_token), await sockets(bob_token)
    await a.send_message(conversation.pk, "hello", client_id="lost-reply")
    await b.send(type="ack", conversation=conversation.pk, seq=1)
    await a.receive_type("message.status")

    again = await a.send_message(conversation.pk, "hello", client_id="lost-reply")

    assert again["seq"] == 1 and again["status"] == "delivered"


async def test_concurrent_sends_from_several_connections_get_gapless_seqs(sockets):
    users = await people(4)
    group = await db(group_conversation)(*(user for user, _ in users))
    listener = await sockets(users[0][1])  # the group's creator, who has seen its creation notice (seq 1)
    senders = [await sockets(token) for _, token in users[1:]] + [await sockets(await another_device(users[1][0]))]
    per_sender = 5

    async def burst(client, index):
        for n in range(per_sender):
            await client.send(type="message.send", client_id=f"s{index}-{n}", conversation=group.pk, text=f"{index}/{n}")
        return await client.receive_types("message.sent", count=per_sender)

    replies = await asyncio.gather(*(burst(client, i) for i, client in enumerate(senders)))

    total = per_sender * len(senders)
    sent_seqs = sorted(reply["message"]["seq"] for replies_of_one in replies for reply in replies_of_one)
    assert sent_seqs == list(range(2, 2 + total))
    for replies_of_one in replies:  # one connection's messages keep the order it sent them in
        seqs = [reply["message"]["seq"] for reply in replies_of_one]
        assert seqs == sorted(seqs)
    received = sorted(e["message"]["seq"] for e in await listener.receive_types("message.new", count=total))
    assert received == sent_seqs


async def test_replying_marks_the_other_persons_messages_read(sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    conversation = await db(direct_conversation)(alice, bob)
    a, b = await sockets(alice_token), await sockets(bob_token)
    await a.send_message(conversation.pk, "one")
    await a.send_message(conversation.pk, "two")

    await b.send_message(conversation.pk, "answer")

    status = await a.receive_type("message.status")
    assert (status["status"], status["seq"], status["user"]) == ("read", 3, bob.pk)
    assert (await db(membership)(bob, conversation)).read_seq == 3


async def test_sending_to_a_conversation_you_are_not_in_is_not_found(sockets):
    (alice, _), (bob, bob_token), (_, mallory_token) = await people(3)
    conversation = await db(direct_conversation)(alice, bob)
    b, m = await sockets(bob_token), await sockets(mallory_token)

    for target in (conversation.pk, conversation.pk + 1000):
        await m.send(type="message.send", client_id=f"sneak-{target}", conversation=target, text="let me in")
        error = await m.receive_type("error")
        assert (error["code"], error["frame"], error["ref"], error["field"]) == (
            "not_found", "message.send", f"sneak-{target}", "conversation",
        )

    assert await db(stored_texts)(conversation.pk) == []
    assert not any(e["type"] == "message.new" for e in await b.drain())


@pytest.mark.parametrize("who_blocks", ["recipient", "sender"])
async def test_no_message_passes_a_block_in_either_direction(sockets, who_blocks):
    (alice, alice_token), (bob, bob_token) = await people(2)
    conversation = await db(direct_conversation)(alice, bob)
    blocker, blocked = (bob, alice) if who_blocks == "recipient" else (alice, bob)
    await db(people_service.block_user)(blocker=blocker, user_id=blocked.pk)
    a, b = await sockets(alice_token), await sockets(bob_token)

    await a.send(type="message.send", client_id="c1", conversation=conversation.pk, text="hello?")

    error = await a.receive_type("error")
    assert (error["code"], error["frame"], error["ref"]) == ("blocked", "message.send", "c1")
    assert await db(stored_texts)(conversation.pk) == []
    assert not any(e["type"] == "message.new" for e in await b.drain())


async def test_a_block_does_not_silence_a_group(sockets):
    (alice, alice_token), (bob, bob_token) = await people(2)
    group = await db(group_conversation)(alice, bob)
    await db(people_service.block_user)(blocker=bob, user_id=alice.pk)
    a = await sockets(alice_token)

    message = await a.send_message(group.pk, "group business")

    assert message["seq"] == 2


async def test_too_many_messages_are_refused_with_retry_after(sockets, settings):
    settings.MESSENGER = {**settings.MESSENGER, "SEND_RATE": 2, "SEND_RATE_WINDOW": 3600}
    (alice, alice_token), (bob, _) = await people(2)
    conversation = await db(direct_conversation)(alice, bob)
    a = await sockets(alice_token)
    first = await a.send_message(conversation.pk, "1", client_id="m1")
    await a.send_message(conversation.pk, "2")

    await a.send(type="message.send", client_id="m3", conversation=conversation.pk, text="3")

    error = await a.receive_type("error")
    assert (error["code"], error["frame"], error["ref"]) == ("rate_limited", "message.send", "m3")
    assert isinstance(error["retry_after"], int) and 1 <= error["retry_after"] <= 3600
    assert await db(stored_texts)(conversation.pk) == ["1", "2"]
    # A retry of a message that did go through is an answer, not a new message: not limited.
    assert await a.send_message(conversation.pk, "1", client_id="m1") == first
