"""The in-process channel layer of the embedded setup (one server process, no Redis).

Channels' own `InMemoryChannelLayer` is meant for tests: every `receive()` and `group_send()` first
walks every channel and every group membership in the process looking for expired entries, and
every message is deep-copied per recipient. With 1,000 connected users that is ~3,000 entries per
event, and the server spent its time there (docs/performance.md). This layer keeps the same
semantics where they matter and costs O(recipients) per event:

- each channel is a bounded queue (`capacity`); a full channel drops the message (`ChannelFull`,
  which `group_send` ignores), as the channel layer is at-most-once anyway;
- messages older than `expiry` seconds are dropped when they reach the head of their queue, and
  a channel whose message expired unread is taken out of its groups (its consumer is gone);
- group membership does not expire: a websocket open for days keeps getting its events (Channels'
  `group_expiry` of a day would silently stop them);
- a message is shared by the recipients, not copied: consumers must not mutate what they receive
  (ours only read it);
- a consumer may `attach` a synchronous handler to its channel, which group messages are handed to
  on the spot instead of being queued (see `attach`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import string
import time
from collections import defaultdict
from collections.abc import Callable

import msgpack
from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer

logger = logging.getLogger(__name__)


class LocalChannelLayer(BaseChannelLayer):
    extensions = ["groups", "flush"]
    delivers_in_process = True  # every consumer is in this process (broker.publish asks)

    def __init__(self, expiry: int = 60, capacity: int = 1500, channel_capacity=None, **kwargs):
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity, **kwargs)
        self.channels: dict[str, asyncio.Queue] = {}
        self.groups: dict[str, dict[str, None]] = defaultdict(dict)
        self.memberships: dict[str, set[str]] = defaultdict(set)  # channel -> its groups
        self.handlers: dict[str, Callable[[dict], bool]] = {}  # channel -> what takes its messages on the spot

    async def new_channel(self, prefix: str = "specific.") -> str:
        return f"{prefix}.local!{''.join(random.choices(string.ascii_letters, k=12))}"

    def _queue(self, channel: str) -> asyncio.Queue:
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        return queue

    def _send(self, channel: str, message: dict, expires: float) -> None:
        queue = self._queue(channel)
        try:
            queue.put_nowait((expires, message))
        except asyncio.QueueFull:
            head = queue._queue[0][0] if queue._queue else None  # noqa: SLF001 - peeking is all we need
            if head is not None and head < time.time():  # nobody has read it for `expiry`: gone
                self._forget(channel)
            raise ChannelFull(channel) from None

    async def send(self, channel: str, message: dict) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        assert "__asgi_channel__" not in message
        self._send(channel, message, time.time() + self.expiry)

    async def receive(self, channel: str) -> dict:
        self.require_valid_channel_name(channel)
        queue = self._queue(channel)
        try:
            while True:
                expires, message = await queue.get()
                if expires >= time.time():
                    return message
                self._leave_groups(channel)  # a message waited too long: this channel's reader is gone
        finally:
            # A channel in no group with nothing queued is forgotten (a consumer that has left).
            if queue.empty() and channel not in self.memberships and self.channels.get(channel) is queue:
                del self.channels[channel]

    def _leave_groups(self, channel: str) -> None:
        for group in self.memberships.pop(channel, ()):
            members = self.groups.get(group)
            if members is not None:
                members.pop(channel, None)
                if not members:
                    del self.groups[group]

    def _forget(self, channel: str) -> None:
        self._leave_groups(channel)
        self.channels.pop(channel, None)

    # --- handing messages over on the spot ------------------------------------------------------
    def attach(self, channel: str, handler: Callable[[dict], bool]) -> None:
        """Hand the group messages for `channel` to `handler` as they are sent, instead of queuing them.

        A queued message reaches its consumer three turns of the event loop later (the queue wakes
        the receiving task, which wakes the consumer's dispatch loop), after everything else that
        was ready meanwhile: for a group of 50, that is 49 consumers woken one after the other
        before the last member's socket is written to. A handler writes at once. It runs in the
        sender's task and must not block; it returns False for a message it leaves to the queue.
        While anything is queued for the channel, messages queue behind it, so the channel's order
        holds.
        """
        self.require_valid_channel_name(channel)
        self.handlers[channel] = handler

    def detach(self, channel: str) -> None:
        self.handlers.pop(channel, None)

    def _handed_over(self, channel: str, message: dict) -> bool:
        handler = self.handlers.get(channel)
        if handler is None:
            return False
        queue = self.channels.get(channel)
        return (queue is None or queue.empty()) and handler(message)

    # --- groups ---------------------------------------------------------------------------------
    async def group_add(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        self.groups[group][channel] = None
        self.memberships[channel].add(group)

    async def group_discard(self, group: str, channel: str) -> None:
        self.require_valid_channel_name(channel)
        self.require_valid_group_name(group)
        members = self.groups.get(group)
        if members is not None:
            members.pop(channel, None)
            if not members:
                del self.groups[group]
        groups = self.memberships.get(channel)
        if groups is not None:
            groups.discard(group)
            if not groups:
                del self.memberships[channel]
                queue = self.channels.get(channel)
                if queue is not None and queue.empty() and not queue._getters:  # noqa: SLF001
                    del self.channels[channel]

    async def group_send(self, group: str, message: dict, *, except_channel: str | None = None) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_group_name(group)
        members = self.groups.get(group)
        if not members:
            return
        expires = time.time() + self.expiry
        for channel in list(members):
            if channel == except_channel or self._handed_over(channel, message):
                continue
            try:
                self._send(channel, message, expires)
            except ChannelFull:
                pass

    async def flush(self) -> None:
        self.channels = {}
        self.handlers = {}
        self.groups = defaultdict(dict)
        self.memberships = defaultdict(set)

    async def close(self) -> None:
        pass

    async def group_send_many(self, groups: list[str], message: dict, *, except_channel: str | None = None) -> None:
        """The same message to several groups (what broker.publish does for every event), but not to
        `except_channel`: the connection that caused the event, which has had its own answer. Left
        out here, it costs nothing; delivered, it would wake that consumer only to be dropped."""
        for group in groups:
            await self.group_send(group, message, except_channel=except_channel)


try:
    from channels_redis.pubsub import RedisPubSubChannelLayer
except ImportError:  # pragma: no cover - channels-redis is a requirement
    RedisPubSubChannelLayer = None

# How long a count of the processes listening on a shard stays good (`group_send_many`). Processes
# come and go rarely; a stale count costs only the choice between the two ways of publishing.
LISTENERS_MAX_AGE = 10.0

if RedisPubSubChannelLayer is not None:

    class RedisPubSubLayer(RedisPubSubChannelLayer):
        """channels_redis' pub/sub layer, plus one round trip for an event to many groups, and
        events handed to their consumers as they are read (`attach`).

        Every event goes to one group per member (`user.<id>`): 50 for a message in a group of 50.
        The base layer PUBLISHes them one at a time, each a round trip under the connection's lock,
        and serializes the message each time. Here the message is serialized once, and either each
        group's PUBLISH goes in one pipeline or, for an event to more groups than there are server
        processes listening, one PUBLISH carries it with its groups to every process, which hands
        it to its own connections in those groups (`group_send_many`). (It reaches into the
        layer's per-loop internals, hence the fallbacks, and channels-redis is pinned below 5 in
        requirements.txt.)
        """

        delivers_in_process = False  # the members' consumers may be in any process

        async def group_add(self, group: str, channel: str) -> None:
            layer = self._get_layer()
            try:
                shard = layer._get_shard(layer._get_group_channel_name(group))
                # Before the group's own subscription: from then on, its events may come either way.
                await self._listen_for_fan_out(layer, shard)
            except AttributeError:  # the internals moved: group_send_many publishes per group then too
                pass
            await layer.group_add(group, channel)

        async def group_send_many(self, groups: list[str], message: dict, *, except_channel: str | None = None) -> None:
            """`message` to every group; `except_channel` is left to the consumer, which drops
            what names its own channel: the receiving process decides which of its connections get
            a group's message.

            Fanned out, one PUBLISH instead of 49 for a message in a group of 50 spread over two
            processes: each process reads it once (where it read its members' 25 copies one by
            one) and hands it to its connections in one go. With 49 PUBLISHes in the pipeline the
            first member's copy reached another process 1.8 ms after the publish began, against
            0.7 ms for one, and the 25th 0.6 ms after the first (docs/performance.md, change 48).
            Each shard (Redis host) carries the events of its own groups, so one group's events
            keep their order, whichever way each went."""
            layer = self._get_layer()
            try:
                shards: dict = {}
                for group in groups:
                    channel = layer._get_group_channel_name(group)
                    shard = layer._get_shard(channel)
                    shards.setdefault(id(shard), (shard, []))[1].append(channel)
                data = self.serialize(message)
                for shard, channels in shards.values():
                    await self._publish_on_shard(layer, shard, channels, data)
            except AttributeError:  # the internals moved: one PUBLISH per group, as the base layer does
                for group in groups:
                    await layer.group_send(group, message)

        async def _publish_on_shard(self, layer, shard, channels: list[str], data: bytes) -> None:
            fan_out = _fan_out_channel(layer)
            async with shard._lock:
                shard._ensure_redis()
                listeners, counted_at = getattr(shard, "messenger_listeners", (None, 0.0))
                now = time.monotonic()
                async with shard._redis.pipeline(transaction=False) as pipe:
                    if listeners is not None and len(channels) > listeners:
                        pipe.publish(fan_out, msgpack.packb(channels) + data)
                    else:
                        for channel in channels:
                            pipe.publish(channel, data)
                    recount = now - counted_at >= LISTENERS_MAX_AGE
                    if recount:  # in the same round trip
                        pipe.pubsub_numsub(fan_out)
                    replies = await pipe.execute()
                if recount:
                    try:
                        shard.messenger_listeners = (int(replies[-1][0][1]), now)
                    except (IndexError, TypeError, ValueError):  # an unexpected reply: publish per group
                        logger.warning("unexpected PUBSUB NUMSUB reply %r", replies[-1])
                        shard.messenger_listeners = (None, now)

        async def _listen_for_fan_out(self, layer, shard) -> None:
            """Subscribe this process to `shard`'s fanned-out events (once; again after a flush),
            which its reader then hands to this process's connections in their groups."""
            fan_out = _fan_out_channel(layer)
            if getattr(shard, "messenger_fan_out_layer", None) is not layer:
                channel = fan_out.encode()
                read_one = shard._receive_message

                def receive_message(message):
                    if message is not None and message["channel"] == channel:
                        _hand_fanned_out(layer, message["data"])
                    else:
                        read_one(message)

                shard._receive_message = receive_message
                shard.messenger_fan_out_layer = layer
            await shard.subscribe(fan_out)

        # --- handing messages over as they are read ---------------------------------------------
        def attach(self, channel: str, handler: Callable[[dict], bool]) -> None:
            """As LocalChannelLayer.attach, for what arrives from Redis: a message for `channel` is
            handed to `handler` as the layer's reader takes it off the connection, instead of going
            through the channel's queue, its receiving task and the consumer's dispatch loop (three
            turns of the event loop, consumer after consumer). `handler` returns False for what it
            leaves to the queue; while anything is queued, messages queue behind it.

            The hook is the queue's `put_nowait`, which the reader calls for every message of the
            channel and of its groups (channels-redis' internals, pinned in requirements.txt:
            without them nothing is attached, and messages are queued as before).
            """
            queue = self._queue(channel)
            if queue is None:
                return
            put, deserialize = queue.put_nowait, self._deserialize_once

            def hand_over(data):
                try:
                    if queue.empty() and handler(deserialize(data)):
                        return
                except Exception:  # the reader must go on: one failure of its would stall every delivery
                    logger.exception("handing a message to %s failed; it is queued instead", channel)
                put(data)

            queue.put_nowait = hand_over

        def detach(self, channel: str) -> None:
            queue = self._queue(channel)
            if queue is not None:
                queue.__dict__.pop("put_nowait", None)

        def _queue(self, channel: str) -> asyncio.Queue | None:
            try:
                queue = self._get_layer().channels.get(channel)
            except AttributeError:
                return None
            return queue if isinstance(queue, asyncio.Queue) else None

        _last_read: tuple[bytes, dict] | None = None

        def _deserialize_once(self, data: bytes) -> dict:
            """A message to a user's group arrives once per process and goes to each of the user's
            connections there (phone and laptop) one after the other: it is decoded for the first
            and the same dict handed to the rest (handlers only read it)."""
            last = self._last_read
            if last is not None and last[0] is data:
                return last[1]
            message = self.deserialize(data)
            self._last_read = (data, message)
            return message

    def _fan_out_channel(layer) -> str:
        # Apart from its groups' (`<prefix>__group__<name>`) and connections' (`<prefix>specific.<id>`).
        return f"{layer.prefix}__fanout__"

    def _hand_fanned_out(layer, data: bytes) -> None:
        """A fanned-out event (the msgpack list of its groups' channels, then the event as the layer
        serialized it) to every connection of this process in those groups, as if each group's
        copy had been read: the same bytes for all, so `_deserialize_once` decodes them once."""
        try:
            unpacker = msgpack.Unpacker(raw=False)
            unpacker.feed(data)
            group_channels = unpacker.unpack()
            event = data[unpacker.tell():]
            for group_channel in group_channels:
                for channel in tuple(layer.groups.get(group_channel, ())):
                    queue = layer.channels.get(channel)
                    if queue is not None:
                        queue.put_nowait(event)
        except Exception:  # the reader must go on (it would pause a second on an error of ours)
            logger.exception("handing a fanned-out event over failed")
