"""Timestamps along each message's path inside the servers, for `bench/ab.py --timeline`.

Python imports this module at start-up when its folder is on PYTHONPATH, which bench/ab.py does
for the servers it starts with `--timeline`, naming a folder in MESSENGER_BENCH_TIMELINE. It
wraps, from outside, the functions a message passes through (nothing in the application knows of
it) and appends `<client_id> <mark> <nanoseconds>` lines to a file per process there. The clock
is CLOCK_MONOTONIC, one for every process on the machine, so one server's marks and the other's
compare. The marks (bench/timeline/analyze.py reads them):

    received           uvicorn last read from a websocket before the handler started (uvicorn only)
    queued             uvicorn has parsed the `message.send` frame and queued it for the consumer (uvicorn only)
    dispatched         the consumer took it from the queue (its `dispatch`)
    handler            the consumer's `message.send` handler starts
    call0, call1       its database call in a thread, or on the loop on SQLite (frontdesk/db.py)
    stmt0, stmt1       its statement on the event loop, on PostgreSQL (storage/async_sql.py)
    publish0, publish1 the PUBLISH pipeline to Redis, scaled out (messenger/channel_layer.py)
    write0, write1     a recipient's `message.new` written to its socket, in whichever process
    answered           the sender's `message.sent` written
"""

import contextlib
import contextvars
import functools
import importlib.abc
import importlib.machinery
import json
import os
import re
import sys
import time

FOLDER = os.environ.get("MESSENGER_BENCH_TIMELINE")
_current = contextvars.ContextVar("bench_timeline_message", default=None)  # the client_id being sent
_lines: list[str] = []
_last_read = [0]
_CLIENT_ID = re.compile(r'"client_id":\s*"([^" ]+)"')


def _mark(key, name, at=None) -> None:
    _lines.append(f"{key} {name} {at if at is not None else time.perf_counter_ns()}\n")
    if len(_lines) >= 200:  # small batches: the servers are killed, not stopped, after a run
        with open(os.path.join(FOLDER, f"timeline.{os.getpid()}"), "a") as out:
            out.writelines(_lines)
        _lines.clear()


def _message_key(frame) -> str | None:
    """The client_id of a `message.new` frame; None for any other frame."""
    if not isinstance(frame, str) or '"message.new"' not in frame[:40]:
        return None
    try:
        return json.loads(frame)["message"]["client_id"]
    except (ValueError, KeyError, TypeError):
        return None


def _patch_uvicorn(module) -> None:
    protocol = module.WebSocketsSansIOProtocol
    data_received = protocol.data_received

    def timed(self, data):
        _last_read[0] = time.perf_counter_ns()
        return data_received(self, data)

    handle_text = protocol.handle_text

    def timed_text(self, event):
        handle_text(self, event)
        found = _CLIENT_ID.search(event.data.decode("utf-8", "replace"))
        if found:
            _mark(found.group(1), "queued")

    protocol.handle_text = timed_text

    protocol.data_received = timed


@contextlib.contextmanager
def _between(key, first: str, last: str):
    """Mark `first` before the block and `last` after it, for the message `key` (none if None)."""
    if key is None:
        yield
        return
    _mark(key, first)
    try:
        yield
    finally:
        _mark(key, last)


def _patch_consumers(module) -> None:
    consumer = module.ChatConsumer
    on_message_send, call, write_now, push = (consumer.on_message_send, consumer.call, consumer._write_now,
                                             consumer.push)
    dispatch = consumer.dispatch

    @functools.wraps(dispatch)
    async def timed_dispatch(self, message):
        if message.get("type") == "websocket.receive":
            found = _CLIENT_ID.search(message.get("text") or "")
            if found:
                _mark(found.group(1), "dispatched")
        return await dispatch(self, message)

    @functools.wraps(on_message_send)
    async def timed_send(self, frame):
        key = frame.get("client_id") if isinstance(frame, dict) else None
        if not isinstance(key, str) or " " in key:
            return await on_message_send(self, frame)
        if _last_read[0]:  # uvicorn's read (not patched under Daphne)
            _mark(key, "received", _last_read[0])
        token = _current.set(key)
        try:
            with _between(key, "handler", "answered"):
                return await on_message_send(self, frame)
        finally:
            _current.reset(token)

    @functools.wraps(call)
    async def timed_call(self, function, **kwargs):
        with _between(_current.get(), "call0", "call1"):
            return await call(self, function, **kwargs)

    @functools.wraps(write_now)
    def timed_write_now(self, frame):
        with _between(_message_key(frame), "write0", "write1"):
            write_now(self, frame)

    @functools.wraps(push)
    async def timed_push(self, payload):
        with _between(_message_key(payload.get("frame")), "write0", "write1"):
            await push(self, payload)

    consumer.on_message_send, consumer.call, consumer._write_now, consumer.push, consumer.dispatch = (
        timed_send, timed_call, timed_write_now, timed_push, timed_dispatch)
    consumer.HANDLERS = {**consumer.HANDLERS, "message.send": timed_send}


def _patch_async_sql(module) -> None:
    rows = module.rows

    @functools.wraps(rows)
    async def timed_rows(sql, params):
        with _between(_current.get(), "stmt0", "stmt1"):
            return await rows(sql, params)

    module.rows = timed_rows


def _patch_channel_layer(module) -> None:
    layer = getattr(module, "RedisPubSubLayer", None)
    if layer is None:
        return
    send_many = layer.group_send_many

    @functools.wraps(send_many)
    async def timed_send_many(self, groups, message, **kwargs):
        with _between(_message_key(message.get("frame")), "publish0", "publish1"):
            await send_many(self, groups, message, **kwargs)

    layer.group_send_many = timed_send_many


_PATCHES = {
    "uvicorn.protocols.websockets.websockets_sansio_impl": _patch_uvicorn,
    "frontdesk.consumers": _patch_consumers,
    "storage.async_sql": _patch_async_sql,
    "messenger.channel_layer": _patch_channel_layer,
}


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    """Finds the modules above as usual, and patches each once it has run."""

    def find_spec(self, name, path, target=None):
        patch = _PATCHES.get(name)
        if patch is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            patch(module)

        spec.loader.exec_module = exec_and_patch
        return spec


if FOLDER:
    sys.meta_path.insert(0, _PatchAfterImport())
