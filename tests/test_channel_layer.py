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
