"""Scale-out: two real server processes sharing PostgreSQL and Redis behave as one server.

User A talks to one process (uvicorn) and user B to another (Daphne: the two servers the project
supports, which a deployment may mix while it moves from one to the other), both on 127.0.0.1
over a throwaway PostgreSQL database and the Redis channel layer and cache (tests/live_server.py). The test proves
that messages, receipts, typing and presence cross between the processes, in a direct chat and in a
group, and that SIGKILLing a process loses no stored message:

- the recipient's process dies: its user reconnects to the other process and catches up on exactly
  the messages above their delivered watermark, in order, including those sent while they were away;
- the sender's process dies mid-burst: the sender reconnects to the other process and resends every
  unconfirmed client_id; each message is stored once, seqs stay gapless, the recipient (on the
  surviving process) ends with every one of them, in order.

It needs DATABASE_URL and REDIS_URL (`make test-scaleout` sets them to this machine's services);
the embedded run skips it.
"""

import asyncio
import os
import time

import pytest

from tests.live_server import (
    PASSWORD,
    Browser,
    LiveDatabase,
    ServerProcess,
    WsClient,
    conversation,
    direct_conversation,
    full_history,
    group_conversation,
    register,
    servers_unavailable_reason,
)

_unavailable = servers_unavailable_reason()
pytestmark = [
    pytest.mark.skipif(not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")),
                       reason="needs DATABASE_URL and REDIS_URL (run by make test-scaleout)"),
    pytest.mark.skipif(_unavailable is not None, reason=f"scale-out tests need uvicorn and Daphne: {_unavailable}"),
]

BURST = 20  # messages in each burst around a kill


@pytest.fixture(scope="module")
def shared_db(tmp_path_factory):
    database = LiveDatabase(tmp_path_factory.mktemp("scaleout"))
    assert database.base_url and database.redis_url
    try:
        database.create()
        yield database
    finally:
        database.drop()


@pytest.fixture
def processes(shared_db):
    started: list[ServerProcess] = []

    async def start(kind: str) -> ServerProcess:
        server = ServerProcess(shared_db, kind)
        started.append(server)
        return await asyncio.to_thread(server.start)

    try:
        yield start
    finally:
        for server in started:
            server.kill()
        for server in started:  # shown by pytest only when the test failed
            print(f"--- {server.server} #{server.number} (port {server.port}) log tail ---\n{server.log_tail()}")


async def wait_until(predicate, *, timeout: float = 10, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(predicate):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout}s")


async def next_event(client: WsClient, event_type: str, *, timeout: float = 10, **fields) -> dict:
    """The next event of `event_type` whose fields match, skipping everything else."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{client.label}: no {event_type} {fields} within {timeout}s")
        try:
            event = await client.receive(timeout=remaining)
        except TimeoutError:
            continue
        if event["type"] == event_type and all(event.get(k) == v for k, v in fields.items()):
            return event


async def next_message(client: WsClient, client_id: str, *, timeout: float = 10) -> dict:
    """The message.new carrying the message with this client_id."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{client.label}: no message.new for {client_id} within {timeout}s")
        try:
            event = await client.receive(timeout=remaining)
        except TimeoutError:
            continue
        if event["type"] == "message.new" and event["message"]["client_id"] == client_id:
            return event["message"]


async def messages_of(client: WsClient, conversation_id: int, count: int, *, timeout: float = 15,
                      distinct: bool = False) -> list[dict]:
    """The next `count` message.new of the conversation, in arrival order: duplicates kept, unless
    `distinct` (a socket that connects while messages are being sent may get one both live and in
    its catch-up, which clients drop by seq)."""
    found: list[dict] = []
    deadline = time.monotonic() + timeout
    while len({m["seq"] for m in found} if distinct else found) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{client.label}: {len(found)} of {count} messages within {timeout}s")
        try:
            event = await client.receive(timeout=remaining)
        except TimeoutError:
            continue
        if event["type"] == "message.new" and event["message"]["conversation"] == conversation_id:
            found.append(event["message"])
    return found


def first_of_each_seq(messages: list[dict]) -> list[dict]:
    """What a client shows: each seq's first arrival, in arrival order (it drops repeats by seq)."""
    shown: dict[int, dict] = {}
    for message in messages:
        shown.setdefault(message["seq"], message)
    return list(shown.values())


async def no_more_messages(client: WsClient, conversation_id: int, *, already: set[int] = frozenset()) -> None:
    """Nothing more of the conversation arrives, but perhaps again a message of a seq in `already`
    (at least once on the wire: clients drop those by seq)."""
    late = [e for e in await client.quiet(0.5, event_type="message.new")
            if e["message"]["conversation"] == conversation_id and e["message"]["seq"] not in already]
    assert late == [], f"{client.label}: more messages than expected: {late}"


def send_frame(conversation_id: int, client_id: str, text: str) -> dict:
    return {"type": "message.send", "client_id": client_id, "conversation": conversation_id, "text": text}


async def test_two_processes_share_messages_receipts_typing_presence_and_survive_a_kill(processes):
    p1, p2 = await asyncio.gather(processes("uvicorn"), processes("daphne"))
    alice, alice_token = register(p1, "Alice")
    bob, bob_token = register(p2, "Bob")
    carol, carol_token = register(p2, "Carol")
    direct = direct_conversation(p1, alice_token, bob)["id"]
    group = group_conversation(p2, bob_token, "Across", [alice, carol])["id"]
    clients: list[WsClient] = []

    async def connect(server, token, label) -> WsClient:
        client = await WsClient.connect(server, token, label)
        clients.append(client)
        return client

    try:
        # --- presence: Bob comes online on p2, Alice hears it on p1 (Redis channel layer + cache)
        a = await connect(p1, alice_token, "alice@p1")
        b = await connect(p2, bob_token, "bob@p2")
        await next_event(a, "presence", user=bob["id"], online=True)
        members = {m["user"]["id"]: m for m in conversation(p2, bob_token, direct)["members"]}
        assert members[alice["id"]]["online"] is True, "p2 does not see the connection held by p1"
        c = await connect(p2, carol_token, "carol@p2")

        # --- typing, both ways
        await a.send(type="typing", conversation=direct)
        await next_event(b, "typing", conversation=direct, user=alice["id"])
        await b.send(type="typing", conversation=direct)
        await next_event(a, "typing", conversation=direct, user=bob["id"])

        # --- a message from p1 to p2, its receipts back from p2 to p1, and a reply from p2 to p1
        await a.send(**send_frame(direct, "a-1", "hello from p1"))
        sent = (await next_event(a, "message.sent", client_id="a-1"))["message"]
        received = await next_message(b, "a-1")
        assert (received["id"], received["seq"], received["text"]) == (sent["id"], sent["seq"], "hello from p1")
        await b.send(type="ack", conversation=direct, seq=sent["seq"])
        await next_event(a, "message.status", conversation=direct, user=bob["id"], status="delivered", seq=sent["seq"])
        await b.send(type="read", conversation=direct, seq=sent["seq"])
        await next_event(a, "message.status", conversation=direct, user=bob["id"], status="read", seq=sent["seq"])
        await b.send(**send_frame(direct, "b-1", "hello from p2"))
        reply = (await next_event(b, "message.sent", client_id="b-1"))["message"]
        assert (await next_message(a, "b-1"))["id"] == reply["id"]

        # --- a group whose members sit on both processes
        await a.send(**send_frame(group, "a-g1", "to the group"))
        group_sent = (await next_event(a, "message.sent", client_id="a-g1"))["message"]
        for member in (b, c):
            assert (await next_message(member, "a-g1"))["id"] == group_sent["id"]
        await c.send(**send_frame(group, "c-g1", "back from p2"))
        carol_sent = (await next_event(c, "message.sent", client_id="c-g1"))["message"]
        assert (await next_message(a, "c-g1"))["id"] == carol_sent["id"]
        await a.send(type="typing", conversation=group)
        await next_event(c, "typing", conversation=group, user=alice["id"])

        # --- presence: Bob leaves p2, Alice hears it on p1
        await b.close()
        offline = await next_event(a, "presence", user=bob["id"], online=False)
        assert offline["last_seen"]

        # --- the recipient's process dies: nothing stored is lost
        b = await connect(p2, bob_token, "bob@p2 again")
        for i in range(BURST):
            await a.send(**send_frame(direct, f"before-kill-{i}", f"before {i}"))
        before = [e["message"] for e in await a.collect("message.sent", BURST)]
        live = await messages_of(b, direct, BURST, distinct=True)
        assert sorted({m["seq"] for m in live}) == sorted(m["seq"] for m in before)
        half = sorted(m["seq"] for m in before)[BURST // 2 - 1]
        await b.send(type="ack", conversation=direct, seq=half)
        await wait_until(lambda: conversation(p1, bob_token, direct)["delivered_seq"] == half,
                         what="bob's delivered watermark")
        p2.kill()

        for i in range(BURST):  # while Bob is away
            await a.send(**send_frame(direct, f"while-away-{i}", f"away {i}"))
        away = [e["message"] for e in await a.collect("message.sent", BURST)]

        b = await connect(p1, bob_token, "bob@p1 after the kill")
        expected = sorted([m for m in before if m["seq"] > half] + away, key=lambda m: m["seq"])
        # As Bob connects, p1 may not have published the last of Alice's messages yet: those come
        # again, live, after the catch-up (at least once on the wire), and never a message more.
        caught_up = first_of_each_seq(await messages_of(b, direct, len(expected), distinct=True))
        assert [(m["seq"], m["id"], m["client_id"]) for m in caught_up] == [
            (m["seq"], m["id"], m["client_id"]) for m in expected
        ], "catch-up after the kill is not exactly the unacknowledged messages, in order"
        await no_more_messages(b, direct, already={m["seq"] for m in caught_up})
        await b.send(type="ack", conversation=direct, seq=expected[-1]["seq"])
        await wait_until(lambda: conversation(p1, bob_token, direct)["delivered_seq"] == expected[-1]["seq"],
                         what="bob's delivered watermark after catching up")

        # --- the sender's process dies mid-burst: a retry on the other process stores each once
        p3 = await processes("uvicorn")
        await a.close()
        a = await connect(p3, alice_token, "alice@p3")
        client_ids = [f"mid-burst-{i}" for i in range(BURST)]
        for client_id in client_ids:
            await a.send(**send_frame(direct, client_id, client_id))
        await asyncio.sleep(0.05)  # some are committed, some perhaps not: the client cannot tell
        p3.kill()

        a = await connect(p1, alice_token, "alice@p1 after the kill")
        for client_id in client_ids:  # everything unconfirmed is resent with its client_id
            await a.send(**send_frame(direct, client_id, client_id))
        confirmed = {e["client_id"]: e["message"] for e in await a.collect("message.sent", BURST)}
        assert set(confirmed) == set(client_ids)
        seqs = sorted(m["seq"] for m in confirmed.values())
        assert seqs == list(range(seqs[0], seqs[0] + BURST)), "seqs of the burst are not gapless"

        # A message committed on p3 just before the kill may never have been published; Bob's next
        # connection catches up on every one of them, in seq order (and perhaps again live, as above).
        await b.close()
        b = await connect(p1, bob_token, "bob@p1 reconnected")
        got = first_of_each_seq(await messages_of(b, direct, BURST, distinct=True))
        assert [(m["seq"], m["id"], m["client_id"]) for m in got] == sorted(
            (m["seq"], m["id"], m["client_id"]) for m in confirmed.values()
        )
        await no_more_messages(b, direct, already={m["seq"] for m in got})

        history = full_history(p1, alice_token, direct)
        assert [m["seq"] for m in history] == list(range(1, len(history) + 1)), "history has a gap"
        stored_ids = [m["client_id"] for m in history]
        assert len(stored_ids) == len(set(stored_ids)), "a client_id was stored twice"
        assert len(history) == 2 + 2 * BURST + BURST
    finally:
        await asyncio.gather(*(client.close() for client in clients))


async def test_a_new_password_closes_the_other_browsers_page_on_the_other_process_at_once(processes):
    """Alice sets a new password in her browser, whose page is served by p1; the page of another
    browser in her account, served by p2, is told and closed at once, through Redis (not at its
    next frame or the minute's check). Her own page on p1, and its session, stay."""
    p1, p2 = await asyncio.gather(processes("uvicorn"), processes("daphne"))
    alice, _ = register(p1, "Alice")
    bob, bob_token = register(p2, "Bob")
    direct = direct_conversation(p2, bob_token, alice)["id"]
    mine, theirs = await asyncio.gather(asyncio.to_thread(Browser, p1, alice), asyncio.to_thread(Browser, p2, alice))
    clients: list[WsClient] = []
    try:
        clients += [await WsClient.connect_page(p1, mine, "alice's page@p1"),
                    await WsClient.connect_page(p2, theirs, "the other browser's page@p2"),
                    await WsClient.connect(p2, bob_token, "bob@p2")]
        my_page, their_page, b = clients
        await asyncio.gather(*(client.ready() for client in clients))

        status, body = await asyncio.to_thread(mine.post, f"{p1.url}/api/v1/me/password",
                                               {"current_password": PASSWORD, "new_password": "a brand new passphrase"})

        assert (status, body) == (200, {"devices_logged_out": 1})  # the device `register` logged in
        await next_event(their_page, "session.revoked", timeout=5)
        assert await their_page.closed_with(timeout=5) == 4001
        await b.send(**send_frame(direct, "after", "only alice's own page hears this"))
        assert (await next_message(my_page, "after"))["text"] == "only alice's own page hears this"
        status, _ = await asyncio.to_thread(mine.post, f"{p1.url}/api/v1/me/password",
                                            {"current_password": "a brand new passphrase", "new_password": "and again, newer"})
        assert status == 200, "the session that set the password was logged out"
    finally:
        await asyncio.gather(*(client.close() for client in clients))
