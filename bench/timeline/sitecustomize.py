"""Timestamps along each message's path inside the servers, for `bench/ab.py --timeline`.

Python imports this module at start-up when its folder is on PYTHONPATH, which bench/ab.py does
for the servers it starts with `--timeline`, naming a folder in MESSENGER_BENCH_TIMELINE. It
wraps, from outside, the functions a message passes through (nothing in the application knows of
it) and appends `<client_id> <mark> <nanoseconds>` lines to a file per process there. The clock
is CLOCK_MONOTONIC, one for every process on the machine, so one server's marks and the other's
compare. The marks (bench/timeline/analyze.py reads them):

    received           uvicorn last read from a websocket before the handler started (uvicorn only)
    handler            the consumer's `message.send` handler starts
    call0, call1       its database call in a thread, or on the loop on SQLite (frontdesk/db.py)
    stmt0, stmt1       its statement on the event loop, on PostgreSQL (storage/async_sql.py)
    publish0, publish1 the PUBLISH pipeline to Redis, scaled out (messenger/channel_layer.py)
    write0, write1     a recipient's `message.new` written to its socket, in whichever process
    answered           the sender's `message.sent` written
"""

import contextvars
import functools
import importlib.abc
import importlib.machinery
import json
import os
import sys
import time

FOLDER = os.environ.get("MESSENGER_BENCH_TIMELINE")
_current = contextvars.ContextVar("bench_timeline_message", default=None)  # the client_id being sent
_lines: list[str] = []
_last_read = [0]


def _mark(key, name, at=None) -> None:
    _lines.append(f"{key} {name} {at or time.perf_counter_ns()}\n")
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

    protocol.data_received = timed


def _patch_consumers(module) -> None:
    consumer = module.ChatConsumer
    on_message_send, call, write_now, push = (consumer.on_message_send, consumer.call, consumer._write_now,
                                             consumer.push)

    @functools.wraps(on_message_send)
    async def timed_send(self, frame):
        key = frame.get("client_id") if isinstance(frame, dict) else None
        if not isinstance(key, str) or " " in key:
            return await on_message_send(self, frame)
        _mark(key, "received", _last_read[0])
        _mark(key, "handler")
        token = _current.set(key)
        try:
            return await on_message_send(self, frame)
        finally:
            _current.reset(token)
            _mark(key, "answered")

    @functools.wraps(call)
    async def timed_call(self, function, **kwargs):
        key = _current.get()
        if key is not None:
            _mark(key, "call0")
        try:
            return await call(self, function, **kwargs)
        finally:
            if key is not None:
                _mark(key, "call1")

    @functools.wraps(write_now)
    def timed_write_now(self, frame):
        key = _message_key(frame)
        if key is not None:
            _mark(key, "write0")
        write_now(self, frame)
        if key is not None:
            _mark(key, "write1")

    @functools.wraps(push)
    async def timed_push(self, payload):
        key = _message_key(payload.get("frame"))
        if key is not None:
            _mark(key, "write0")
        await push(self, payload)
        if key is not None:
            _mark(key, "write1")

    consumer.on_message_send, consumer.call, consumer._write_now, consumer.push = (
        timed_send, timed_call, timed_write_now, timed_push)
    consumer.HANDLERS = {**consumer.HANDLERS, "message.send": timed_send}


def _patch_async_sql(module) -> None:
    rows = module.rows

    @functools.wraps(rows)
    async def timed_rows(sql, params):
        key = _current.get()
        if key is not None:
            _mark(key, "stmt0")
        try:
            return await rows(sql, params)
        finally:
            if key is not None:
                _mark(key, "stmt1")

    module.rows = timed_rows


def _patch_channel_layer(module) -> None:
    layer = getattr(module, "RedisPubSubLayer", None)
    if layer is None:
        return
    send_many = layer.group_send_many

    @functools.wraps(send_many)
    async def timed_send_many(self, groups, message, **kwargs):
        key = _message_key(message.get("frame"))
        if key is not None:
            _mark(key, "publish0")
        await send_many(self, groups, message, **kwargs)
        if key is not None:
            _mark(key, "publish1")

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
