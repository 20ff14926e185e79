"""messenger.channel_layer: LocalChannelLayer, the embedded setup's in-process layer, and
RedisPubSubLayer, the scaled-out one."""

import asyncio
import uuid

import pytest
from django.conf import settings

from messenger.channel_layer import LocalChannelLayer, RedisPubSubLayer


async def nothing_arrives(layer: LocalChannelLayer, channel: str) -> bool:
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(channel), timeout=0.1)
    return True


def all_but_the_first(handed: list):
    """A handler that declines the first event (as a consumer declines a revocation) and takes the
    rest into `handed`."""
    def take(message):
        if message["n"] == 1:
            return False
        handed.append(message)
        return True
    return take


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
    layer.attach(phone, all_but_the_first(handed))
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


# --- the Redis pub/sub layer (scaled out) ---------------------------------------------------------
redis_only = pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL (run by make test-scaleout)")


def redis_layer(prefix: str | None = None):
    """A layer of its own, as a server process has, in a namespace of this test's (or `prefix`)."""
    config = settings.CHANNEL_LAYERS["default"]["CONFIG"]
    return RedisPubSubLayer(hosts=config["hosts"], prefix=prefix or f"{config['prefix']}-{uuid.uuid4().hex[:8]}")


async def eventually(condition, timeout: float = 2) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


@redis_only
async def test_from_redis_an_attached_connection_is_handed_its_events_as_they_are_read():
    namespace = f"{settings.CHANNEL_LAYERS['default']['CONFIG']['prefix']}-{uuid.uuid4().hex[:8]}"
    here, elsewhere = redis_layer(namespace), redis_layer(namespace)  # two processes of one deployment
    try:
        phone, laptop = await here.new_channel(), await here.new_channel()
        await here.group_add("user.1", phone)
        await here.group_add("user.1", laptop)
        handed = []
        here.attach(phone, lambda message: handed.append(message) or True)

        await elsewhere.group_send_many(["user.1"], {"type": "push", "n": 1})

        assert await eventually(lambda: handed == [{"type": "push", "n": 1}])
        assert await asyncio.wait_for(here.receive(laptop), timeout=2) == {"type": "push", "n": 1}
        assert here._queue(phone).empty()  # (a receive given up on would end the channel, on this layer)

        here.detach(phone)
        await elsewhere.group_send_many(["user.1"], {"type": "push", "n": 2})
        assert await asyncio.wait_for(here.receive(phone), timeout=2) == {"type": "push", "n": 2}
        assert handed == [{"type": "push", "n": 1}]
    finally:
        await here.flush()
        await elsewhere.flush()


@pytest.fixture
async def redis_phone():
    """A Redis layer with one connection, `phone`, in the group user.1."""
    layer = redis_layer()
    phone = await layer.new_channel()
    await layer.group_add("user.1", phone)
    yield layer, phone
    await layer.flush()


@redis_only
async def test_from_redis_what_is_declined_is_queued_and_later_events_keep_their_order(redis_phone):
    layer, phone = redis_phone
    handed = []
    layer.attach(phone, all_but_the_first(handed))
    for n in (1, 2, 3):
        await layer.group_send_many(["user.1"], {"type": "push", "n": n})

    # 2 and 3 came while 1 waited in the queue: they wait behind it, not before it.
    assert await eventually(lambda: layer._queue(phone).qsize() == 3)
    assert handed == []
    assert [(await asyncio.wait_for(layer.receive(phone), timeout=2))["n"] for _ in range(3)] == [1, 2, 3]
    await layer.group_send_many(["user.1"], {"type": "push", "n": 4})
    assert await eventually(lambda: handed == [{"type": "push", "n": 4}])


@redis_only
async def test_from_redis_a_failing_handler_leaves_the_event_queued_and_the_reader_running(redis_phone):
    layer, phone = redis_phone

    def broken(message):
        raise RuntimeError("a bug in a consumer")

    layer.attach(phone, broken)
    await layer.group_send_many(["user.1"], {"type": "push", "n": 1})
    assert await asyncio.wait_for(layer.receive(phone), timeout=2) == {"type": "push", "n": 1}

    layer.detach(phone)
    await layer.group_send_many(["user.1"], {"type": "push", "n": 2})
    assert await asyncio.wait_for(layer.receive(phone), timeout=2) == {"type": "push", "n": 2}


@redis_only
async def test_from_redis_an_event_to_more_groups_than_processes_reaches_each_connection_once_and_in_order():
    """Such an event goes to every process as one message, which each hands to its own connections
    in those groups; one group's events keep their order whichever way each went."""
    namespace = f"{settings.CHANNEL_LAYERS['default']['CONFIG']['prefix']}-{uuid.uuid4().hex[:8]}"
    here, elsewhere = redis_layer(namespace), redis_layer(namespace)
    try:
        phone, laptop, friend = [await here.new_channel() for _ in range(3)]
        await here.group_add("user.1", phone)
        await here.group_add("user.1", laptop)
        await here.group_add("user.2", friend)
        colleague = await elsewhere.new_channel()
        await elsewhere.group_add("user.3", colleague)
        handed = {channel: [] for channel in (phone, friend, colleague)}
        for channel, layer in ((phone, here), (friend, here), (colleague, elsewhere)):
            layer.attach(channel, lambda message, channel=channel: handed[channel].append(message["n"]) or True)
        everyone = [f"user.{n}" for n in range(1, 7)]  # six groups, three of them with nobody connected

        for n in range(1, 4):
            await elsewhere.group_send_many(everyone, {"type": "push", "n": n})
            await elsewhere.group_send_many(["user.1"], {"type": "push", "n": 10 + n})

        assert elsewhere._get_layer()._shards[0].messenger_listeners[0] == 2  # so events 2 and 3 went as one
        assert await eventually(lambda: handed[phone] == [1, 11, 2, 12, 3, 13])
        assert await eventually(lambda: handed[friend] == [1, 2, 3] and handed[colleague] == [1, 2, 3])
        assert [(await asyncio.wait_for(here.receive(laptop), timeout=2))["n"] for _ in range(6)] \
            == [1, 11, 2, 12, 3, 13]
        await asyncio.sleep(0.1)
        assert handed[friend] == [1, 2, 3] and handed[colleague] == [1, 2, 3]  # once each
    finally:
        await here.flush()
        await elsewhere.flush()


@redis_only
async def test_from_redis_a_process_listens_for_events_to_many_groups_again_after_a_flush():
    namespace = f"{settings.CHANNEL_LAYERS['default']['CONFIG']['prefix']}-{uuid.uuid4().hex[:8]}"
    here, elsewhere = redis_layer(namespace), redis_layer(namespace)
    try:
        for layer in (here, elsewhere):
            await layer.group_add("user.9", await layer.new_channel())
        many = [f"user.{n}" for n in range(1, 6)]
        await elsewhere.group_send_many(many, {"type": "push", "n": 0})  # counts the processes listening
        await here.flush()  # drops every subscription, as a layer's reset does

        phone = await here.new_channel()
        await here.group_add("user.1", phone)
        await elsewhere.group_send_many(many, {"type": "push", "n": 1})

        assert await asyncio.wait_for(here.receive(phone), timeout=2) == {"type": "push", "n": 1}
    finally:
        await here.flush()
        await elsewhere.flush()
