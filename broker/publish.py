"""Ringing the doorbell: events go to the channel layer only after the write they announce commits.

The channel layer is at-most-once, so nothing here is the only copy of anything: a lost event is
made good by the client's catch-up on reconnect. A failing layer is logged, never raised into the
request that already committed.
"""

import asyncio
import logging
from collections.abc import Iterable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

PUSH = "push"  # the handler name consumers implement for every published event


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def device_group(device_id: int) -> str:
    return f"device.{device_id}"


def publish_on_commit(groups: Iterable[str], event: dict, *, skip_channel: str | None = None) -> None:
    """Send `event` to every group once the current transaction commits (at once outside one).

    `skip_channel` names the connection that caused the event and has its own reply already.
    """
    groups = list(groups)
    transaction.on_commit(lambda: publish_now(groups, event, skip_channel=skip_channel))


def publish_now(groups: list[str], event: dict, *, skip_channel: str | None = None) -> None:
    if not groups:
        return
    try:
        async_to_sync(_group_send_all)(groups, {"type": PUSH, "event": event, "skip_channel": skip_channel})
    except Exception:  # the doorbell failing must not undo or fail a committed write
        logger.exception("publishing %s to %d groups failed", event.get("type"), len(groups))


async def _group_send_all(groups: list[str], payload: dict) -> None:
    layer = get_channel_layer()
    await asyncio.gather(*(layer.group_send(group, payload) for group in groups))


async def apublish(groups: Iterable[str], event: dict, *, skip_channel: str | None = None) -> None:
    """The async form, for ephemeral events (typing, presence) that no transaction carries."""
    try:
        await _group_send_all(list(groups), {"type": PUSH, "event": event, "skip_channel": skip_channel})
    except Exception:
        logger.exception("publishing %s failed", event.get("type"))
