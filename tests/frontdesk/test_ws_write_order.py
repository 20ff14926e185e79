"""In one process, a message is written to its recipients' sockets before its sender's `message.sent`.

The in-process channel layer hands events to the consumers on the spot (LocalChannelLayer.attach),
and the sender's answer waits for that hand-over (broker.publish.local_deliveries_first): what a
recipient waits for goes out first, as a relay forwards before it acknowledges.
"""

import json

import pytest
from django.conf import settings
from django.utils.module_loading import import_string

from messenger.asgi import application
from tests.factories import direct_conversation, group_conversation
from tests.ws import connect, db, people

LAYER = import_string(settings.CHANNEL_LAYERS["default"]["BACKEND"])

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not getattr(LAYER, "delivers_in_process", False),
                       reason="the channel layer leaves the process (Redis): recipients are elsewhere"),
]


def recording(writes: list, who: str):
    """The ASGI application, with every frame it writes to this socket noted in `writes`."""
    async def app(scope, receive, send):
        async def noted_send(message):
            if message["type"] == "websocket.send":
                writes.append((who, json.loads(message["text"])["type"]))
            await send(message)
        return await application(scope, receive, noted_send)
    return app


async def open_sockets(writes: list, **tokens: str) -> dict:
    return {who: await connect(token, app=recording(writes, who)) for who, token in tokens.items()}


async def test_a_direct_message_reaches_the_recipient_before_the_sender_hears_it_was_sent():
    (alice, alice_token), (bob, bob_token) = await people(2)
    conversation = await db(direct_conversation)(alice, bob)
    writes = []
    s = await open_sockets(writes, alice=alice_token, bob=bob_token)
    try:
        writes.clear()
        await s["alice"].send_message(conversation.pk, "hi")
        await s["bob"].receive_type("message.new")

        assert writes.index(("bob", "message.new")) < writes.index(("alice", "message.sent"))
    finally:
        for socket in s.values():
            await socket.close()


async def test_every_group_member_is_written_to_before_the_sender_hears_it_was_sent():
    members = await people(5)
    users = [user for user, _ in members]
    group = await db(group_conversation)(users[0], *users[1:])
    writes = []
    s = await open_sockets(writes, **{f"member{i}": token for i, (_, token) in enumerate(members)})
    try:
        writes.clear()
        await s["member0"].send_message(group.pk, "hello all")
        for i in range(1, 5):
            await s[f"member{i}"].receive_type("message.new")

        sent_at = writes.index(("member0", "message.sent"))
        assert all(writes.index((f"member{i}", "message.new")) < sent_at for i in range(1, 5))
        assert ("member0", "message.new") not in writes  # the sender's own device has its answer
    finally:
        for socket in s.values():
            await socket.close()


def held_back(gate, who: str, writes: list):
    """The ASGI application for a socket whose first write of the test's messages waits until `gate`
    opens, as a write the server makes wait does (a slow client's full buffer); the next ones would
    not have to wait."""
    held = []

    async def app(scope, receive, send):
        async def slow_send(message):
            if message["type"] == "websocket.send":
                event = json.loads(message["text"])
                if event["type"] == "message.new" and event["message"]["text"].startswith("message ") and not held:
                    held.append(event)
                    await gate.wait()
                writes.append((who, event["type"]))
            await send(message)
        return await application(scope, receive, slow_send)
    return app


async def test_a_socket_that_is_held_back_keeps_its_order_and_holds_up_nobody_else():
    import asyncio

    members = await people(3)
    users = [user for user, _ in members]
    group = await db(group_conversation)(*users)
    gate, writes = asyncio.Event(), []
    sender = await connect(members[0][1])
    slow = await connect(members[1][1], app=held_back(gate, "slow", writes))
    other = await connect(members[2][1], app=recording(writes, "other"))
    try:
        writes.clear()
        sent = [await sender.send_message(group.pk, f"message {i}") for i in range(3)]
        for message in sent:
            await other.receive_new(message["seq"])
        assert ("slow", "message.new") not in writes  # the first is held back, the others behind it

        gate.set()
        arrived = [event for event in await slow.receive_types("message.new", count=4)
                   if event["message"]["text"].startswith("message ")]  # after the group's creation notice
        assert [event["message"]["seq"] for event in arrived] == [message["seq"] for message in sent]
        assert [event["message"]["text"] for event in arrived] == ["message 0", "message 1", "message 2"]
    finally:
        for socket in (sender, slow, other):
            await socket.close()



async def test_a_client_that_does_not_read_is_closed_and_catches_up_when_it_reconnects(settings):
    import asyncio

    settings.MESSENGER = {**settings.MESSENGER, "MAX_FRAMES_WAITING": 2}
    (alice, alice_token), (bob, bob_token) = await people(2)
    conversation = await db(direct_conversation)(alice, bob)
    gate, writes = asyncio.Event(), []
    sender = await connect(alice_token)
    stuck = await connect(bob_token, app=held_back(gate, "stuck", writes))
    try:
        # The first is held back, two wait behind it, and the fourth is one too many.
        sent = [await sender.send_message(conversation.pk, f"message {i}") for i in range(4)]

        assert await stuck.receive_close() == 4009
        again = await connect(bob_token)
        caught_up = await again.receive_types("message.new", count=4)
        assert [event["message"]["seq"] for event in caught_up] == [message["seq"] for message in sent]
        await again.close()
    finally:
        gate.set()
        await sender.close()
        await stuck.close()
