"""A browser page's websocket (its session cookie) against a device's (its token), one server on
PostgreSQL and Redis: does the page's send take longer? (docs/performance.md, changes 36, 38, 40)

    .venv/bin/python bench/session_socket.py [--messages 400] [--rounds 4] [--rate 20] [--frame typing|connect]

Alice is connected twice, as a device and as a browser page; Bob as a device. Each round, each of
Alice's sockets sends its share of the messages one at a time (`--rate` a second), and every send
is timed to Alice's `message.sent` and to Bob's `message.new`; with `--frame typing`, typing
notices instead, each timed to Bob's `typing`; with `--frame connect`, each kind of socket is
opened anew, `--messages` times in all, each timed until it answers its first frame. The first
round warms up and is not counted. PostgreSQL and Redis are bench/run.py's (BENCH_DATABASE_URL,
BENCH_REDIS_URL; by default this machine's); the database is one of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The services bench/run.py uses (its BENCH_ variables and defaults), seen by the servers' environment.
os.environ["DATABASE_URL"] = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
os.environ["REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")

from tests.live_server import LiveDatabase, ServerProcess, _connect_options, direct_conversation, register  # noqa: E402

# The session a browser gets when logging in, made by Django in the servers' environment.
BROWSER_LOGIN = """
import django
django.setup()
from django.conf import settings
from django.test import Client
from storage.models import User
browser = Client()
browser.force_login(User.objects.get(pk={user_id}))
print(browser.cookies[settings.SESSION_COOKIE_NAME].value)
"""


async def _wait_for(socket, event_type: str, client_id: str) -> float:
    while True:
        frame = json.loads(await asyncio.wait_for(socket.recv(), 5))
        message = frame.get("message", frame)
        if frame.get("type") == event_type and message.get("client_id") == client_id:
            return time.perf_counter()


async def _timed_sends(sender, recipient, conversation: int, count: int, rate: float, label: str):
    sent_ms, delivered_ms = [], []
    for number in range(count):
        client_id = f"{label}-{number}-{time.time_ns()}"
        started = time.perf_counter()
        await sender.send(json.dumps({"type": "message.send", "conversation": conversation,
                                      "client_id": client_id, "text": "hello"}))
        sent_at = await _wait_for(sender, "message.sent", client_id)
        delivered_at = await _wait_for(recipient, "message.new", client_id)
        sent_ms.append((sent_at - started) * 1000)
        delivered_ms.append((delivered_at - started) * 1000)
        await asyncio.sleep(1 / rate)
    return sent_ms, delivered_ms


async def _timed_typing(sender, recipient, conversation: int, count: int, rate: float, label: str):
    heard_ms = []
    for _ in range(count):
        started = time.perf_counter()
        await sender.send(json.dumps({"type": "typing", "conversation": conversation}))
        while json.loads(await asyncio.wait_for(recipient.recv(), 5)).get("type") != "typing":
            pass
        heard_ms.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(1 / rate)
    return [], heard_ms


async def _timed_connects(open_socket, count: int, rate: float):
    """Each time, a new socket of Alice's opened and asked one frame: its connect is done (token or
    session, presence, catch-up) when the server answers it. Another of her sockets stays open, so
    she stays online and each connect is the same work."""
    ready_ms = []
    for _ in range(count):
        started = time.perf_counter()
        socket = await open_socket()
        await socket.send(json.dumps({"type": "ready?", "ref": "ready"}))
        while json.loads(await asyncio.wait_for(socket.recv(), 5)).get("ref") != "ready":
            pass
        ready_ms.append((time.perf_counter() - started) * 1000)
        await socket.close()
        await asyncio.sleep(1 / rate)
    return [], ready_ms


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _measure(args, server: ServerProcess, alice_token: str, bob_token: str, conversation: int,
                   session_key: str) -> None:
    from websockets.asyncio.client import connect

    options = _connect_options()
    device = await connect(f"{server.ws_url}/ws/v1/?token={alice_token}", **options)
    page = await connect(f"{server.ws_url}/ws/v1/", origin=server.url,
                         additional_headers={"Cookie": f"sessionid={session_key}"}, **options)
    bob = await connect(f"{server.ws_url}/ws/v1/?token={bob_token}", **options)
    openers = {"device": lambda: connect(f"{server.ws_url}/ws/v1/?token={alice_token}", **options),
               "page": lambda: connect(f"{server.ws_url}/ws/v1/", origin=server.url,
                                       additional_headers={"Cookie": f"sessionid={session_key}"}, **options)}
    counted = {"device": ([], []), "page": ([], [])}
    timed = _timed_typing if args.frame == "typing" else _timed_sends
    for round_number in range(args.rounds):
        for label, socket in (("device", device), ("page", page)):
            count = args.messages // args.rounds
            if args.frame == "connect":
                sent, delivered = await _timed_connects(openers[label], count, args.rate)
            else:
                sent, delivered = await timed(socket, bob, conversation, count, args.rate, label)
            if round_number > 0:
                counted[label][0].extend(sent)
                counted[label][1].extend(delivered)
    for label, (sent, delivered) in counted.items():
        if args.frame == "connect":
            print(f"{label:7s} connect p50 {_percentile(delivered, .5):.2f} p90 {_percentile(delivered, .9):.2f} ms  "
                  f"({len(delivered)} connects)")
            continue
        if args.frame == "typing":
            print(f"{label:7s} typing p50 {_percentile(delivered, .5):.2f} p90 {_percentile(delivered, .9):.2f} ms  "
                  f"({len(delivered)} notices)")
            continue
        print(f"{label:7s} message.sent p50 {_percentile(sent, .5):.2f} p90 {_percentile(sent, .9):.2f} ms  "
              f"message.new p50 {_percentile(delivered, .5):.2f} p90 {_percentile(delivered, .9):.2f} ms  "
              f"({len(sent)} messages)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=400, help="per socket, all rounds")
    parser.add_argument("--rounds", type=int, default=4, help="the first warms up (at least 2)")
    parser.add_argument("--rate", type=float, default=20, help="sends a second")
    parser.add_argument("--frame", choices=["message", "typing", "connect"], default="message",
                        help="what Alice's sockets send: messages, or typing notices; or connect: "
                             "her sockets are opened anew, each timed until it answers a frame")
    args = parser.parse_args()
    if args.rounds < 2 or args.messages < args.rounds:
        parser.error("--rounds must be at least 2, and --messages at least --rounds")
    database = LiveDatabase(Path(tempfile.mkdtemp(prefix="session-socket-")))
    database.create()
    server = None
    try:
        server = ServerProcess(database).start()
        alice, alice_token = register(server, "Alice")
        bob, bob_token = register(server, "Bob")
        conversation = direct_conversation(server, alice_token, bob["id"])["id"]
        session_key = subprocess.run([sys.executable, "-c", BROWSER_LOGIN.format(user_id=alice["id"])], cwd=ROOT,
                                     env=database.env(), capture_output=True, text=True, check=True).stdout.split()[-1]
        asyncio.run(_measure(args, server, alice_token, bob_token, conversation, session_key))
    finally:
        if server is not None:
            server.kill()
        database.drop()


if __name__ == "__main__":
    main()
