"""Hostile input against a real server process (uvicorn as `make run` serves it, and Daphne): what the
in-process tests cannot send.

Frames far over the limit, text frames that are not UTF-8, deeply nested JSON, floods of frames,
and HTTP bodies over the limit: each is answered with an error or a close, the server keeps
serving everyone else, and its log shows no traceback.
"""

import asyncio
import json
from collections import Counter

import pytest

from tests.live_server import (
    LiveDatabase,
    ServerProcess,
    WsClient,
    _connect_options,
    direct_conversation,
    http,
    register,
    servers_unavailable_reason,
)

_unavailable = servers_unavailable_reason()
pytestmark = pytest.mark.skipif(_unavailable is not None, reason=f"real-server tests need uvicorn and Daphne: {_unavailable}")


@pytest.fixture(scope="module", params=["uvicorn", "daphne"])
def server(request, tmp_path_factory):
    database = LiveDatabase(tmp_path_factory.mktemp("hostile"))
    process = ServerProcess(database, server=request.param)
    try:
        database.create()
        yield process.start()
    finally:
        process.kill()
        print(f"--- {process.server} log tail ---\n{process.log_tail()}")
        database.drop()


async def raw_connect(server, token):
    from websockets.asyncio.client import connect

    options = {**_connect_options(), "max_size": 2**22}
    return await connect(f"{server.ws_url}/ws/v1/?token={token}", **options)


async def next_event(connection, timeout: float = 5) -> dict:
    return json.loads(await asyncio.wait_for(connection.recv(), timeout))


async def next_error(connection, timeout: float = 5) -> dict:
    """The next `error` event, past any presence or other live event that happens to arrive first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        event = await next_event(connection, timeout=max(0.01, deadline - loop.time()))
        if event.get("type") == "error":
            return event


async def test_hostile_frames_get_errors_or_closes_and_the_server_keeps_serving(server):
    from websockets.exceptions import ConnectionClosed

    alice, alice_token = register(server, "Alice")
    bob, bob_token = register(server, "Bob")
    conversation = direct_conversation(server, alice_token, bob)["id"]
    bystander = await WsClient.connect(server, bob_token, "bob")
    try:
        # Over the server's own 1 MiB bound (Daphne's --websocket_max_message_size, uvicorn's
        # --ws-max-size as `make run` sets it): the server drops the socket.
        huge = await raw_connect(server, alice_token)
        with pytest.raises((ConnectionClosed, OSError)):
            await huge.send("x" * (2**21))
            while True:  # past any live event already on its way (a timeout here fails the test)
                await next_event(huge)

        hostile = await raw_connect(server, alice_token)
        await hostile.send("x" * (2**19))  # 512 KiB: under the server's bound, far over ours (64 KiB)
        assert (await next_error(hostile))["code"] == "frame_too_large"
        await hostile.send("[" * 60_000)  # under the limit, nested past any parser's depth
        assert (await next_error(hostile))["code"] in {"bad_json", "frame_too_large"}
        await hostile.send(b"\x00\x01\x02")  # binary
        assert (await next_error(hostile))["code"] == "bad_frame"

        # A text frame that is not UTF-8: the websocket layer itself closes (1007, invalid data).
        await hostile.send(b"\xff\xfe{}", text=True)
        with pytest.raises(ConnectionClosed) as closed:
            while True:  # past any live event already on its way
                await next_event(hostile)
        assert closed.value.rcvd is None or closed.value.rcvd.code == 1007

        # A flood of cheap frames (each answered unknown_type, no database work): refused with
        # rate_limited, then closed (4008), however slowly a loaded machine handles them.
        flooder = await raw_connect(server, alice_token)
        codes = []
        started = asyncio.get_running_loop().time()
        for _ in range(600):
            try:
                await flooder.send(json.dumps({"type": "flood"}))
            except ConnectionClosed:
                break
        try:
            while True:
                event = await next_event(flooder, timeout=10)
                if event.get("type") == "error":
                    codes.append(event["code"])
        except ConnectionClosed as exc:
            assert exc.rcvd is not None and exc.rcvd.code == 4008
        flooded_for = asyncio.get_running_loop().time() - started
        assert set(codes) == {"unknown_type", "rate_limited"}, Counter(codes)
        # The burst, and what refilled (50 a second) while the flood lasted.
        assert codes.count("unknown_type") <= 200 + 50 * flooded_for + 1, (Counter(codes), flooded_for)

        # Everyone else is unaffected.
        sender = await WsClient.connect(server, alice_token, "alice")
        await sender.send(type="message.send", client_id="after-the-storm", conversation=conversation, text="calm")
        sent = (await sender.collect("message.sent", 1))[0]["message"]
        received = (await bystander.collect("message.new", 1))[0]["message"]
        assert received["id"] == sent["id"]
        await sender.close()
    finally:
        await bystander.close()

    # An HTTP body over the limit and deep JSON over HTTP: documented errors, not 5xx.
    status, body = http("POST", f"{server.url}/api/v1/conversations/{conversation}/messages",
                        {"client_id": "huge", "text": "x" * 3_000_000}, token=alice_token)
    assert (status, body["error"]["code"]) == (413, "body_too_large")
    log = server.log_path.read_text(errors="replace")
    # uvicorn closes a socket that sent non-UTF-8 text with 1007 (checked above) and logs that
    # handled case with its traceback; any other traceback is a failure.
    handled = log.count("Invalid UTF-8 sequence received from client.\nTraceback")
    assert log.count("Traceback") == handled, log[-3000:]
