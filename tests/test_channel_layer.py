"""messenger.channel_layer.LocalChannelLayer, the embedded setup's in-process layer."""

import asyncio

import pytest

from messenger.channel_layer import LocalChannelLayer


async def nothing_arrives(layer: LocalChannelLayer, channel: str) -> bool:
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(channel), timeout=0.1)
    return True


async def test_an_event_reaches_every_connection_in_its_groups_but_the_one_that_caused_it():
    layer = LocalChannelLayer()
    phone, laptop, other_person = [await layer.new_channel() for _ in range(3)]
    await layer.group_add("user.1", phone)
    await layer.group_add("user.1", laptop)
    await layer.group_add("user.2", other_person)

    await layer.group_send_many(["user.1", "user.2"], {"type": "push", "n": 1}, except_channel=phone)

    assert await asyncio.wait_for(layer.receive(laptop), timeout=1) == {"type": "push", "n": 1}
    assert await asyncio.wait_for(layer.receive(other_person), timeout=1) == {"type": "push", "n": 1}
    assert await nothing_arrives(layer, phone)  # its consumer is not woken for an event it would drop

    await layer.group_send_many(["user.1"], {"type": "push", "n": 2})
    assert await asyncio.wait_for(layer.receive(phone), timeout=1) == {"type": "push", "n": 2}


async def test_an_attached_connection_is_handed_its_events_at_once_instead_of_queuing_them():
    layer = LocalChannelLayer()
    phone, laptop = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("user.1", phone)
    await layer.group_add("user.1", laptop)
    handed = []
    layer.attach(phone, lambda message: handed.append(message) or True)

    await layer.group_send_many(["user.1"], {"type": "push", "n": 1})

    assert handed == [{"type": "push", "n": 1}]  # within the send, before anything else runs
    assert await nothing_arrives(layer, phone)
    assert await asyncio.wait_for(layer.receive(laptop), timeout=1) == {"type": "push", "n": 1}

    layer.detach(phone)
    await layer.group_send_many(["user.1"], {"type": "push", "n": 2})
    assert handed == [{"type": "push", "n": 1}]
    assert await asyncio.wait_for(layer.receive(phone), timeout=1) == {"type": "push", "n": 2}


async def test_what_an_attached_connection_declines_is_queued_and_later_events_keep_their_order():
    layer = LocalChannelLayer()
    phone = await layer.new_channel()
    await layer.group_add("user.1", phone)
    handed = []

    def take_all_but_the_first(message):
        if message["n"] == 1:
            return False
        handed.append(message)
        return True

    layer.attach(phone, take_all_but_the_first)
    for n in (1, 2, 3):
        await layer.group_send_many(["user.1"], {"type": "push", "n": n})

    # 2 and 3 came while 1 waited in the queue: they wait behind it, not before it.
    assert handed == []
    assert [(await layer.receive(phone))["n"] for _ in range(3)] == [1, 2, 3]

    await layer.group_send_many(["user.1"], {"type": "push", "n": 4})
    assert handed == [{"type": "push", "n": 4}]  # the queue is empty again


async def test_the_connection_that_caused_an_event_is_not_handed_it_either():
    layer = LocalChannelLayer()
    phone = await layer.new_channel()
    await layer.group_add("user.1", phone)
    handed = []
    layer.attach(phone, lambda message: handed.append(message) or True)

    await layer.group_send_many(["user.1"], {"type": "push", "n": 1}, except_channel=phone)

    assert handed == []
    assert await nothing_arrives(layer, phone)
