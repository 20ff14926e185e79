"""Delivery invariants with real server processes: uvicorn and Daphne subprocesses, SIGKILL, restarts.

Each test runs `messenger.asgi` in uvicorn (as `make run` does; Daphne beside it where two
processes share the work) on 127.0.0.1 over a throwaway database of this module (tests/live_server.py):
a SQLite file on the embedded setup, a uniquely named PostgreSQL database
with the Redis channel layer when DATABASE_URL / REDIS_URL are set. Clients speak only HTTP and the
websocket protocol, so these tests use none of pytest-django's databases.

Invariants checked (docs: ARCHITECTURE "Delivery: durable first, real time second"):
- a message reported `sent` survives a SIGKILL of the server, and the recipient then receives
  exactly those messages once, in seq order, and nothing again after acknowledging them;
- a retried client_id never makes a second message, across a restart and across processes;
- seq stays gapless and unique when senders on two processes write into one conversation at once.
"""

import asyncio
import time

import pytest

from tests.live_server import (
    HOST,
    UVICORN,
    LiveDatabase,
    ServerProcess,
    WsClient,
    conversation,
    direct_conversation,
    full_history,
    group_conversation,
    http,
    login,
    register,
    servers_unavailable_reason,
)

_unavailable = servers_unavailable_reason()
pytestmark = pytest.mark.skipif(_unavailable is not None,
                                reason=f"real-server tests need uvicorn and Daphne: {_unavailable}")

N_MESSAGES = 40  # test 1: messages sent before the crash
USERS = 3  # test 3: group members, each with one device on each of the two processes
PER_SENDER = 15  # test 3: messages each of the USERS * 2 devices sends in one burst


@pytest.fixture(scope="module")
def live_db(tmp_path_factory):
    database = LiveDatabase(tmp_path_factory.mktemp("live_server"))
    try:
        database.create()
        yield database
    finally:
        database.drop()


class Servers:
    """Starts server processes on the module's database and kills every one of them at teardown."""

    def __init__(self, database: LiveDatabase):
        self.database = database
        self.started: list[ServerProcess] = []

    async def start(self, kind: str = "uvicorn") -> ServerProcess:
        server = ServerProcess(self.database, kind)
        self.started.append(server)
        return await asyncio.to_thread(server.start)

    def kill_all(self) -> None:
        for server in self.started:
            server.kill()


@pytest.fixture
def servers(live_db):
    pool = Servers(live_db)
    try:
        yield pool
    finally:
        pool.kill_all()
        for server in pool.started:  # shown by pytest only when the test failed
            print(f"--- {server.server} #{server.number} (port {server.port}) log tail ---\n{server.log_tail()}")


async def wait_until(predicate, *, timeout: float = 5, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(predicate):
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout}s")


async def close_all(clients):
    await asyncio.gather(*(c.close() for c in clients if c is not None))


def send_frame(conversation_id: int, client_id: str, text: str) -> dict:
    return {"type": "message.send", "client_id": client_id, "conversation": conversation_id, "text": text}


async def test_sent_messages_survive_sigkill_and_reach_the_recipient_once_in_order(servers):
    first = await servers.start()
    alice, alice_token = register(first, "Alice")
    bob, bob_token = register(first, "Bob")
    conv = direct_conversation(first, alice_token, bob)["id"]
    clients = []
    try:
        sender = await WsClient.connect(first, alice_token, "alice@1")
        clients.append(sender)
        for i in range(N_MESSAGES):
            await sender.send(**send_frame(conv, f"survive-{i}", f"message {i}"))
        sent = [e["message"] for e in await sender.collect("message.sent", N_MESSAGES, timeout=20)]
        assert sorted(m["seq"] for m in sent) == list(range(1, N_MESSAGES + 1))
        assert [m["client_id"] for m in sent] == [f"survive-{i}" for i in range(N_MESSAGES)]

        # Bob never connected; the only copy of the messages is what the server committed.
        first.kill()
        second = await servers.start()

        recipient = await WsClient.connect(second, bob_token, "bob@2")
        clients.append(recipient)
        backlog = [e["message"] for e in await recipient.collect("message.new", N_MESSAGES, timeout=10)]
        assert await recipient.quiet(0.5, event_type="message.new") == [], "more than the sent messages were replayed"
        assert [m["seq"] for m in backlog] == list(range(1, N_MESSAGES + 1))
        by_seq = sorted(sent, key=lambda m: m["seq"])
        assert [(m["id"], m["client_id"], m["text"], m["sender"]) for m in backlog] == [
            (m["id"], m["client_id"], m["text"], alice["id"]) for m in by_seq
        ]

        for message in backlog:
            await recipient.send(type="ack", conversation=conv, seq=message["seq"])
        await wait_until(lambda: conversation(second, bob_token, conv)["delivered_seq"] == N_MESSAGES,
                         what=f"bob's delivered watermark at {N_MESSAGES}")
        await recipient.close()

        again = await WsClient.connect(second, bob_token, "bob@2 again")
        clients.append(again)
        assert await again.quiet(0.5, event_type="message.new") == [], "acknowledged messages were replayed"
        await again.close()

        # The watermark is as durable as the messages: nothing comes back after another crash.
        second.kill()
        third = await servers.start()
        after_crash = await WsClient.connect(third, bob_token, "bob@3")
        clients.append(after_crash)
        replayed = await after_crash.quiet(0.5, event_type="message.new")
        assert replayed == [], "acknowledged messages came back after a crash"

        history = full_history(third, alice_token, conv)
        assert [(m["seq"], m["status"]) for m in history] == [(s, "delivered") for s in range(1, N_MESSAGES + 1)]
    finally:
        await close_all(clients)


async def test_retried_client_id_after_a_restart_makes_no_second_message(servers):
    first = await servers.start()
    alice, alice_token = register(first, "Alice")
    bob, bob_token = register(first, "Bob")
    conv = direct_conversation(first, alice_token, bob)["id"]
    clients = []
    try:
        sender = await WsClient.connect(first, alice_token, "alice@1")
        clients.append(sender)

        # 1. The reply arrives, then the server dies.
        await sender.send(**send_frame(conv, "retry-acked", "one"))
        acked = (await sender.collect("message.sent", 1))[0]["message"]
        assert acked["seq"] == 1

        # 2. The message commits but its reply is never read: the client cannot tell it from a loss.
        await sender.send(**send_frame(conv, "retry-unread", "two"))
        await wait_until(lambda: len(full_history(first, alice_token, conv)) == 2, what="the second message committed")
        unread = full_history(first, alice_token, conv)[1]
        assert unread["client_id"] == "retry-unread" and unread["seq"] == 2

        # 3. The server dies right after the frame left the client: committed or not, unknown.
        await sender.send(**send_frame(conv, "retry-racing", "three"))
        first.kill()

        second = await servers.start()
        retrier = await WsClient.connect(second, alice_token, "alice@2")
        clients.append(retrier)
        for client_id, text in [("retry-acked", "one"), ("retry-unread", "two"), ("retry-racing", "three")]:
            await retrier.send(**send_frame(conv, client_id, text))
        replies = {e["client_id"]: e["message"] for e in await retrier.collect("message.sent", 3)}
        assert (replies["retry-acked"]["id"], replies["retry-acked"]["seq"]) == (acked["id"], acked["seq"])
        assert (replies["retry-unread"]["id"], replies["retry-unread"]["seq"]) == (unread["id"], unread["seq"])
        assert replies["retry-racing"]["seq"] == 3  # whether the crash lost it or not, it is there once

        # The REST door deduplicates against the same rows: 200 with the earlier message.
        status, body = http("POST", f"{second.url}/api/v1/conversations/{conv}/messages",
                            {"client_id": "retry-acked", "text": "one"}, token=alice_token)
        assert status == 200 and (body["id"], body["seq"]) == (acked["id"], acked["seq"]), (status, body)

        history = full_history(second, alice_token, conv)
        assert [(m["seq"], m["client_id"]) for m in history] == [
            (1, "retry-acked"), (2, "retry-unread"), (3, "retry-racing")
        ]
        assert conversation(second, alice_token, conv)["last_seq"] == 3

        recipient = await WsClient.connect(second, bob_token, "bob@2")
        clients.append(recipient)
        backlog = [e["message"] for e in await recipient.collect("message.new", 3)]
        assert [(m["seq"], m["text"]) for m in backlog] == [(1, "one"), (2, "two"), (3, "three")]
        assert await recipient.quiet(0.5, event_type="message.new") == []
    finally:
        await close_all(clients)


async def test_two_processes_keep_seq_gapless_under_concurrent_senders(servers):
    p1, p2 = await asyncio.gather(servers.start("uvicorn"), servers.start("daphne"))
    accounts = [register(p1 if i % 2 else p2, f"Sender {i}") for i in range(USERS)]
    users = [user for user, _ in accounts]
    group = group_conversation(p1, accounts[0][1], "Race", users[1:])
    conv = group["id"]
    assert group["last_seq"] == 1  # the "created the group" system message

    clients: list[WsClient] = []
    try:
        devices = []  # (user index, process name, client)
        for i, (user, token) in enumerate(accounts):
            devices.append((i, "p1", await WsClient.connect(p1, token, f"u{i}@p1")))
            second_token = login(p2, user, "second device")
            devices.append((i, "p2", await WsClient.connect(p2, second_token, f"u{i}@p2")))
        clients.extend(client for _, _, client in devices)

        async def burst(user_index: int, process: str, client: WsClient) -> list[dict]:
            for k in range(PER_SENDER):
                await client.send(**send_frame(conv, f"u{user_index}-{process}-{k}", f"{process} says {k}"))
            return [e["message"] for e in await client.collect("message.sent", PER_SENDER, timeout=25)]

        bursts = await asyncio.gather(*(burst(*device) for device in devices))
        sends = len(devices) * PER_SENDER
        sent = [message for replies in bursts for message in replies]
        assert len(sent) == sends
        assert len({m["client_id"] for m in sent}) == sends, "a client_id was answered twice"
        assert len({m["seq"] for m in sent}) == sends, "two sends were given the same seq"
        assert len({m["id"] for m in sent}) == sends

        total = sends + 1  # with the system message at seq 1
        history = full_history(p2, accounts[0][1], conv)
        assert [m["seq"] for m in history] == list(range(1, total + 1)), "seqs are not exactly 1..total"
        assert history[0]["kind"] == "system"
        stored = {m["seq"]: (m["id"], m["client_id"]) for m in history[1:]}
        assert stored == {m["seq"]: (m["id"], m["client_id"]) for m in sent}
        assert conversation(p1, accounts[0][1], conv)["last_seq"] == total

        # A retry through the same user's device on the other process finds the same message.
        retries = []
        for i, process, client in devices:
            if process == "p2":
                await client.send(**send_frame(conv, f"u{i}-p1-0", "p1 says 0"))
                retries.append(f"u{i}-p1-0")
        replies = {}
        for i, process, client in devices:
            if process == "p2":
                reply = (await client.collect("message.sent", 1))[0]
                replies[reply["client_id"]] = reply["message"]
        originals = {m["client_id"]: m for m in sent}
        assert {cid: (m["id"], m["seq"]) for cid, m in replies.items()} == {
            cid: (originals[cid]["id"], originals[cid]["seq"]) for cid in retries
        }
        assert conversation(p2, accounts[0][1], conv)["last_seq"] == total
    finally:
        await close_all(clients)


class ProductionUvicorn(ServerProcess):
    """uvicorn with the flags of docs/deployment.md's systemd unit: no `--log-level`, so INFO is logged."""

    def command(self) -> list[str]:
        return [str(UVICORN), "--host", HOST, "--port", str(self.port), "--proxy-headers", "--forwarded-allow-ips",
                HOST, "--no-access-log", "--lifespan", "off", "--ws-max-size", "1048576", "messenger.asgi:application"]


async def test_websocket_tokens_stay_out_of_the_server_log(live_db):
    server = ProductionUvicorn(live_db)
    try:
        await asyncio.to_thread(server.start)
        _, token = await asyncio.to_thread(register, server, "Logged")
        client = await WsClient.connect(server, token)
        await client.send(type="typing", conversation=0)
        await client.receive()  # the socket was accepted (and logged) by now
        await client.close()
        refused = await WsClient.connect(server, "not-a-token-but-secret")  # refused sockets are logged too
        await refused.receive()
        await refused.close()
        await asyncio.sleep(0.2)
        log = server.log_path.read_text()
        assert "WebSocket /ws/v1/?token=[hidden]" in log, log  # the connection is still logged
        assert token not in log and "not-a-token-but-secret" not in log, log
    finally:
        server.kill()
