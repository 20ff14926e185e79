"""A randomized soak: nothing lost, nothing duplicated, order kept, through faults.

Real processes: two servers (uvicorn and Daphne) on a throwaway database (SQLite on the embedded run,
PostgreSQL when DATABASE_URL is set) and a redis-server of this test's own (channel layer and
cache), which it kills and restarts; this machine's shared Redis is never touched. Users in direct
chats and groups each run one client that speaks only HTTP and the websocket protocol as
docs/protocol.md tells clients to: deduplicate by (conversation, seq), fill gaps from history,
acknowledge and read, resend unconfirmed messages with the same client_id after a reconnect, and
take the members' watermarks from GET conversations on (re)connect.

Meanwhile, on a seeded schedule: clients drop their sockets at random and reconnect, clients
resend messages that were already confirmed (retries), one server is SIGKILLed mid-stream and
started again, and the Redis server is killed and started again (every group and queued event
gone). At the end every recipient holds exactly the sent messages, in seq order; every sender
has seen every one of its messages reach `read`; the database holds each client_id once, with
gapless seqs and watermarks that never moved backwards (sampled throughout); and sends went on
being stored and answered while Redis was down (the send limit counts stored messages, not a
counter in Redis: docs/security.md).

Seed: MESSENGER_SOAK_SEED (random otherwise, printed either way, with the counts checked).
Without `redis-server` the test skips, unless MESSENGER_REQUIRE_SERVICES=1 (CI) makes that a failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from tests.live_server import (
    HOST,
    LiveDatabase,
    ServerProcess,
    _connect_options,
    free_port,
    http,
    register,
    servers_unavailable_reason,
)

REDIS_SERVER = shutil.which("redis-server")
USERS = 12
GROUPS = [5, 6]  # members of each group (the first USERS users, rotated)
DIRECT_PAIRS = 6
MESSAGES_PER_USER = 24
SEND_GAP = (0.15, 0.6)  # seconds between one client's sends
DISCONNECT_CHANCE = 0.06  # per client per 0.1 s tick... while faults are on
RETRY_CHANCE = 0.08  # resend an already confirmed message (a client that retries)
READ_CHANCE = 0.6  # read at once what arrived (else only acknowledge it; read at the end)
MAIN_PHASE_DEADLINE = 40  # seconds for every message to be confirmed
FINAL_DEADLINE = 20

_unavailable = servers_unavailable_reason()
pytestmark = pytest.mark.skipif(_unavailable is not None, reason=f"the soak test needs uvicorn and Daphne: {_unavailable}")


# --- processes --------------------------------------------------------------------------------------
class RedisProcess:
    """A redis-server of this test's own on a free port: no persistence, killable."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.log_path = workdir / "redis.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self, timeout: float = 10) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [REDIS_SERVER, "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        import redis

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                client = redis.Redis(host=HOST, port=self.port, socket_timeout=1)
                if client.ping():
                    client.close()
                    return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start:\n{self.log_path.read_text()[-2000:]}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)


class SoakDatabase(LiveDatabase):
    """The live servers' database, with this test's Redis as channel layer and cache."""

    def __init__(self, workdir: Path, redis_url: str):
        super().__init__(workdir)
        self.soak_redis_url = redis_url
        self.redis_url = ""  # drop() need not clean a Redis that dies with the test

    def env(self) -> dict[str, str]:
        env = super().env()
        env["REDIS_URL"] = self.soak_redis_url
        # Re-join channel-layer groups every 2 s, so live events resume soon after Redis restarts.
        env["MESSENGER_AUTH_RECHECK_SECONDS"] = "2"
        return env

    def query(self, sql: str) -> list[tuple]:
        if self.base_url:
            import psycopg

            with psycopg.connect(self._url_for(self.name), connect_timeout=5) as conn:
                return list(conn.execute(sql).fetchall())
        conn = sqlite3.connect(self.name, timeout=20)
        try:
            return list(conn.execute(sql).fetchall())
        finally:
            conn.close()


class WatermarkSampler(threading.Thread):
    """Reads every membership's watermarks over and over; a value that ever goes down is a failure."""

    def __init__(self, database: SoakDatabase):
        super().__init__(daemon=True)
        self.database = database
        self.stop = threading.Event()
        self.samples = 0
        self.regressions: list[str] = []
        self.last: dict[int, tuple[int, int]] = {}

    def run(self):
        while not self.stop.is_set():
            try:
                rows = self.database.query("SELECT id, delivered_seq, read_seq FROM storage_membership")
            except Exception:  # a busy database now and then: the next sample counts
                time.sleep(0.1)
                continue
            for pk, delivered, read in rows:
                before = self.last.get(pk)
                if before and (delivered < before[0] or read < before[1]):
                    self.regressions.append(f"membership {pk}: {before} -> {(delivered, read)}")
                self.last[pk] = (delivered, read)
            self.samples += 1
            self.stop.wait(0.2)


# --- the simulation ---------------------------------------------------------------------------------
class Sim:
    def __init__(self, seed: int, servers: list[ServerProcess]):
        self.seed = seed
        self.servers = servers
        self.faults_on = True
        self.redis_down = False
        self.stopping = False
        self.counts: Counter = Counter()

    def alive(self) -> list[ServerProcess]:
        return [s for s in self.servers if s.proc is not None and s.proc.poll() is None]

    async def rest(self, method: str, path: str, token: str, body: dict | None = None, deadline: float = 15):
        """One REST call to any live server, retried through outages (5xx, refused connections)."""
        end = time.monotonic() + deadline
        while True:
            alive = self.alive()
            if alive:
                server = random.choice(alive)
                try:
                    status, payload = await asyncio.to_thread(http, method, f"{server.url}{path}", body, token=token,
                                                              timeout=5)
                    if status < 500:
                        return status, payload
                    self.counts["rest 5xx during faults"] += 1
                except OSError:
                    self.counts["rest refused during faults"] += 1
            if time.monotonic() > end:
                raise AssertionError(f"{method} {path}: no answer within {deadline}s")
            await asyncio.sleep(0.2)


class Client:
    """One user's device, following the client rules of docs/protocol.md."""

    def __init__(self, sim: Sim, index: int, user: dict, token: str, rng: random.Random):
        self.sim = sim
        self.index = index
        self.user = user
        self.token = token
        self.rng = rng
        self.conversations: dict[int, list[int]] = {}  # id -> member ids
        self.held: dict[int, dict[int, dict]] = {}  # conversation -> seq -> message
        self.contiguous: dict[int, int] = {}  # highest seq held with none missing below
        self.plan: list[tuple[int, str, str]] = []  # (conversation, client_id, text) still to send
        self.pending: dict[str, tuple[int, str]] = {}  # sent, not yet confirmed
        self.confirmed: dict[str, dict] = {}  # client_id -> message
        self.read_marks: dict[int, dict[int, int]] = {}  # conversation -> member -> read_seq seen
        self.read_seen_live: set[int] = set()  # ids of own messages whose `read` came as an event
        self.ws = None
        self.own_ids: set[str] = set()

    # -- state ----------------------------------------------------------------------------------------
    def hold(self, message: dict, via: str) -> None:
        conversation, seq = message["conversation"], message["seq"]
        held = self.held.setdefault(conversation, {})
        if seq in held:
            assert held[seq]["id"] == message["id"], f"two messages with seq {seq} in {conversation}"
            self.sim.counts["duplicates dropped (conversation, seq)"] += 1
            return
        held[seq] = message
        self.sim.counts[f"messages held via {via}"] += 1
        top = self.contiguous.get(conversation, 0)
        while top + 1 in held:
            top += 1
        self.contiguous[conversation] = top

    def has_gap(self, conversation: int) -> bool:
        held = self.held.get(conversation, {})
        return bool(held) and max(held) > self.contiguous.get(conversation, 0)

    def note_read(self, conversation: int, member: int, seq: int, live: bool) -> None:
        marks = self.read_marks.setdefault(conversation, {})
        if seq > marks.get(member, 0):
            marks[member] = seq
            if live:
                for message in self.confirmed.values():
                    if message["conversation"] == conversation and message["seq"] <= seq and self._read_by_all(message):
                        self.read_seen_live.add(message["id"])

    def _read_by_all(self, message: dict) -> bool:
        marks = self.read_marks.get(message["conversation"], {})
        others = [m for m in self.conversations[message["conversation"]] if m != self.user["id"]]
        return all(marks.get(m, 0) >= message["seq"] for m in others)

    # -- talking to the server ------------------------------------------------------------------------
    async def send(self, **frame) -> None:
        await self.ws.send(json.dumps(frame))
        self.sim.counts["frames sent"] += 1

    async def refresh(self) -> None:
        """GET conversations: the members' watermarks, and last_seq to fill what is missing."""
        status, listing = await self.sim.rest("GET", "/api/v1/conversations", self.token)
        assert status == 200, (status, listing)
        for conversation in listing:
            for member in conversation["members"]:
                self.note_read(conversation["id"], member["user"]["id"], member["read_seq"], live=False)
            if conversation["last_seq"] > self.contiguous.get(conversation["id"], 0):
                await self.fill(conversation["id"])

    async def fill(self, conversation: int) -> None:
        """GET messages?after_seq=<contiguous>: the protocol's answer to a gap."""
        self.sim.counts["gap fills via history"] += 1
        while True:
            after = self.contiguous.get(conversation, 0)
            status, page = await self.sim.rest(
                "GET", f"/api/v1/conversations/{conversation}/messages?after_seq={after}&limit=200", self.token)
            assert status == 200, (status, page)
            for message in page["results"]:
                self.hold(message, via="history")
            if not page["has_more"]:
                return

    async def acknowledge(self, conversation: int, read: bool) -> None:
        seq = self.contiguous.get(conversation, 0)
        if seq:
            await self.send(type="read" if read else "ack", conversation=conversation, seq=seq)

    async def read_loop(self) -> None:
        async for raw in self.ws:
            event = json.loads(raw)
            kind = event["type"]
            self.sim.counts[f"events {kind}"] += 1
            if kind == "message.new":
                message = event["message"]
                self.hold(message, via="websocket")
                if self.has_gap(message["conversation"]):
                    await self.fill(message["conversation"])
                await self.acknowledge(message["conversation"], read=self.rng.random() < READ_CHANCE)
            elif kind == "message.sent":
                if self.sim.redis_down:
                    self.sim.counts["message.sent while Redis was down"] += 1
                message = event["message"]
                self.pending.pop(event["client_id"], None)
                earlier = self.confirmed.setdefault(event["client_id"], message)
                assert (earlier["id"], earlier["seq"]) == (message["id"], message["seq"]), "a retry made a new message"
                self.hold(message, via="own message.sent")
                if self.has_gap(message["conversation"]):
                    await self.fill(message["conversation"])
            elif kind == "message.status":
                if event["status"] == "read":
                    self.note_read(event["conversation"], event["user"], event["seq"], live=True)
            elif kind == "error":
                # A send that failed before anything was stored stays pending and goes again; the
                # end of the test asserts there were none (no fault here reaches the database).
                # Anything else is a bug.
                assert event["code"] == "server_error" and event["frame"] == "message.send", event
                self.sim.counts["server_error answers (sends retried)"] += 1

    async def connect(self) -> bool:
        from websockets.asyncio.client import connect

        alive = self.sim.alive()
        if not alive:
            return False
        server = self.rng.choice(alive)
        try:
            self.ws = await connect(f"{server.ws_url}/ws/v1/?token={self.token}", **_connect_options())
        except (OSError, asyncio.TimeoutError, Exception):  # refused, reset, or the handshake failed
            self.sim.counts["connect attempts refused"] += 1
            return False
        self.sim.counts["connections"] += 1
        return True

    async def run(self) -> None:
        """Connect, chat, drop, reconnect... until the simulation stops."""
        from websockets.exceptions import ConnectionClosed

        next_send = time.monotonic() + self.rng.uniform(*SEND_GAP)
        while not self.sim.stopping:
            if not await self.connect():
                await asyncio.sleep(0.2)
                continue
            reader = asyncio.create_task(self.read_loop())
            try:
                await self.refresh()
                for client_id, (conversation, text) in list(self.pending.items()):
                    self.sim.counts["resends after reconnect"] += 1
                    await self.send(type="message.send", client_id=client_id, conversation=conversation, text=text)
                while not self.sim.stopping and not reader.done():
                    now = time.monotonic()
                    if self.plan and now >= next_send and len(self.pending) < 3:
                        conversation, client_id, text = self.plan.pop(0)
                        self.pending[client_id] = (conversation, text)
                        await self.send(type="message.send", client_id=client_id, conversation=conversation, text=text)
                        next_send = now + self.rng.uniform(*SEND_GAP)
                    if self.sim.faults_on and self.confirmed and self.rng.random() < RETRY_CHANCE:
                        client_id = self.rng.choice(sorted(self.confirmed))
                        message = self.confirmed[client_id]
                        self.sim.counts["retries of confirmed messages"] += 1
                        await self.send(type="message.send", client_id=client_id,
                                        conversation=message["conversation"], text=message["text"])
                    if self.sim.faults_on and self.rng.random() < DISCONNECT_CHANCE:
                        self.sim.counts["client disconnects"] += 1
                        transport = getattr(self.ws, "transport", None)
                        if transport is not None:
                            transport.abort()  # no close handshake: as a phone losing its network
                        break
                    await asyncio.wait([reader], timeout=0.1)
                if reader.done() and reader.exception() is not None and not isinstance(
                        reader.exception(), (ConnectionClosed, OSError)):
                    raise reader.exception()
            except (ConnectionClosed, OSError):
                pass
            finally:
                reader.cancel()
                try:
                    await asyncio.wait_for(self.ws.close(), 2)
                except Exception:
                    pass
                await asyncio.gather(reader, return_exceptions=True)
            await asyncio.sleep(self.rng.uniform(0.05, 0.3))

    async def settle(self) -> asyncio.Task:
        """The end: reconnect once, catch up, fill every gap, read everything, hear the statuses."""
        while not await self.connect():
            await asyncio.sleep(0.2)
        reader = asyncio.create_task(self.read_loop())
        try:
            for client_id, (conversation, text) in list(self.pending.items()):
                await self.send(type="message.send", client_id=client_id, conversation=conversation, text=text)
            await asyncio.sleep(0.3)  # the catch-up backlog arrives first
            await self.refresh()
            for conversation in self.conversations:
                await self.acknowledge(conversation, read=True)
        except BaseException:
            reader.cancel()
            raise
        return reader


# --- the test -----------------------------------------------------------------------------------------
@pytest.fixture
def redis_server(tmp_path):
    if REDIS_SERVER is None:
        reason = "redis-server is not installed (apt-get install redis-server); the soak test restarts one of its own"
        if os.environ.get("MESSENGER_REQUIRE_SERVICES") == "1":
            pytest.fail(reason + " (MESSENGER_REQUIRE_SERVICES=1 makes this a failure)")
        pytest.skip(reason)
    redis = RedisProcess(tmp_path)
    redis.start()
    try:
        yield redis
    finally:
        redis.kill()


async def test_soak_no_loss_no_duplicates_order_kept_through_faults(tmp_path, redis_server, capsys):
    seed = int(os.environ.get("MESSENGER_SOAK_SEED") or random.SystemRandom().randrange(2**32))
    rng = random.Random(seed)
    started = time.monotonic()
    database = SoakDatabase(tmp_path, redis_server.url)
    servers = [ServerProcess(database, "uvicorn"), ServerProcess(database, "daphne")]
    sampler = WatermarkSampler(database)
    clients: list[Client] = []
    try:
        await asyncio.to_thread(database.create)
        await asyncio.gather(*(asyncio.to_thread(s.start) for s in servers))
        sim = Sim(seed, servers)

        # People and conversations, through the API.
        accounts = [await asyncio.to_thread(register, servers[i % 2], f"Soak {i}") for i in range(USERS)]
        clients = [Client(sim, i, user, token, random.Random(rng.random())) for i, (user, token) in enumerate(accounts)]
        pairs = rng.sample([(a, b) for a in range(USERS) for b in range(a + 1, USERS)], DIRECT_PAIRS)
        for a, b in pairs:
            status, body = await sim.rest("POST", "/api/v1/conversations", clients[a].token,
                                          {"kind": "direct", "phone_number": clients[b].user["phone_number"]})
            assert status == 201, body
            for i in (a, b):
                clients[i].conversations[body["id"]] = [clients[a].user["id"], clients[b].user["id"]]
        for g, size in enumerate(GROUPS):
            members = rng.sample(range(USERS), size)
            for i in members[1:]:  # a group takes only people its creator knows
                status, body = await sim.rest("POST", "/api/v1/contacts", clients[members[0]].token,
                                              {"phone_number": clients[i].user["phone_number"]})
                assert status == 201, body
            status, body = await sim.rest("POST", "/api/v1/conversations", clients[members[0]].token, {
                "kind": "group", "title": f"Soak group {g}", "member_ids": [clients[i].user["id"] for i in members[1:]]})
            assert status == 201, body
            for i in members:
                clients[i].conversations[body["id"]] = [clients[j].user["id"] for j in members]
        for client in clients:
            if not client.conversations:  # everyone talks: a lonely user gets a chat with the next one
                peer = clients[(client.index + 1) % USERS]
                status, body = await sim.rest("POST", "/api/v1/conversations", client.token,
                                              {"kind": "direct", "phone_number": peer.user["phone_number"]})
                client.conversations[body["id"]] = [client.user["id"], peer.user["id"]]
                peer.conversations[body["id"]] = [client.user["id"], peer.user["id"]]
            for n in range(MESSAGES_PER_USER):
                conversation = client.rng.choice(sorted(client.conversations))
                client.plan.append((conversation, str(uuid.UUID(int=client.rng.getrandbits(128))),
                                    f"{client.index}:{n} {'x' * client.rng.randrange(0, 40)}"))
            client.own_ids = {cid for _, cid, _ in client.plan}
        planned = {cid: (c, text) for client in clients for c, cid, text in client.plan}

        sampler.start()
        tasks = [asyncio.create_task(client.run()) for client in clients]

        # Faults, at seeded moments while messages flow.
        kill_at, redis_at = rng.uniform(1.5, 3.5), rng.uniform(4.5, 6.5)
        await asyncio.sleep(kill_at)
        victim = servers[rng.randrange(2)]
        victim.kill()
        sim.counts["server SIGKILLs"] += 1
        await asyncio.sleep(rng.uniform(0.2, 1.0))
        await asyncio.to_thread(victim.start)
        await asyncio.sleep(max(0.0, redis_at - (time.monotonic() - started)))
        redis_server.kill()
        sim.redis_down = True
        sim.counts["redis restarts"] += 1
        await asyncio.sleep(rng.uniform(0.3, 1.0))
        await asyncio.to_thread(redis_server.start)
        sim.redis_down = False

        deadline = time.monotonic() + MAIN_PHASE_DEADLINE
        while any(c.plan or c.pending for c in clients):
            if time.monotonic() > deadline:
                stuck = {c.index: (len(c.plan), len(c.pending)) for c in clients if c.plan or c.pending}
                raise AssertionError(f"seed {seed}: sends not confirmed within {MAIN_PHASE_DEADLINE}s: {stuck}")
            for task in tasks:
                if task.done() and task.exception():
                    raise task.exception()
            await asyncio.sleep(0.2)
        sim.faults_on = False
        sim.stopping = True
        await asyncio.gather(*tasks)

        # Settle: every client reconnects, catches up, reads everything; wait for all to be read.
        readers = await asyncio.gather(*(c.settle() for c in clients))
        final_deadline = time.monotonic() + FINAL_DEADLINE
        while True:
            behind = await asyncio.to_thread(database.query, (
                "SELECT COUNT(*) FROM storage_membership m JOIN storage_conversation c ON c.id = m.conversation_id "
                "WHERE m.read_seq < c.last_seq"))
            if behind[0][0] == 0:
                break
            assert time.monotonic() < final_deadline, f"seed {seed}: {behind[0][0]} memberships never read to the end"
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)  # the last statuses travel
        for client in clients:
            await client.refresh()  # what GET conversations says is what a reconnecting client knows
        for reader in readers:
            reader.cancel()
        for client in clients:
            await client.ws.close()
        await asyncio.gather(*readers, return_exceptions=True)
        sampler.stop.set()
        sampler.join(5)

        # --- the checks ----------------------------------------------------------------------------------
        stored = await asyncio.to_thread(database.query, (
            "SELECT conversation_id, seq, id, sender_id, client_id, kind, text FROM storage_message ORDER BY conversation_id, seq"))
        last_seqs = dict(await asyncio.to_thread(database.query, "SELECT id, last_seq FROM storage_conversation"))
        by_conversation: dict[int, list[tuple]] = {}
        for row in stored:
            by_conversation.setdefault(row[0], []).append(row)

        # The database: gapless seqs, each client_id once, exactly the planned texts, sane watermarks.
        for conversation, rows in by_conversation.items():
            assert [r[1] for r in rows] == list(range(1, last_seqs[conversation] + 1)), f"seq gap in {conversation}"
        user_messages = [r for r in stored if r[5] == "text"]
        assert Counter(r[4] for r in user_messages) == Counter(set(planned)), "stored client_ids differ from the sent ones"
        for row in user_messages:
            assert (row[0], row[6]) == planned[row[4]], f"message {row[4]} stored in the wrong place or changed"
        marks = await asyncio.to_thread(database.query, (
            "SELECT m.delivered_seq, m.read_seq, c.last_seq FROM storage_membership m "
            "JOIN storage_conversation c ON c.id = m.conversation_id"))
        assert all(0 <= read <= delivered <= last for delivered, read, last in marks)
        assert sampler.regressions == [], sampler.regressions

        # Every client: exactly the conversation's messages, in seq order; every sender saw `read`.
        for client in clients:
            for conversation in client.conversations:
                expected = [r[2] for r in by_conversation[conversation]]
                held = client.held.get(conversation, {})
                assert sorted(held) == list(range(1, len(expected) + 1)), f"client {client.index} misses messages"
                assert [held[seq]["id"] for seq in sorted(held)] == expected, f"client {client.index}: wrong messages"
            assert set(client.confirmed) == client.own_ids, f"client {client.index}: not every send confirmed"
            for message in client.confirmed.values():
                assert client._read_by_all(message), f"client {client.index} never saw {message['id']} read"
            status, listing = await sim.rest("GET", "/api/v1/conversations", client.token)
            for conversation in listing:
                assert conversation["unread_count"] == 0
        for client in clients:
            for conversation in client.conversations:
                status, page = await sim.rest(
                    "GET", f"/api/v1/conversations/{conversation}/messages?after_seq=0&limit=200", client.token)
                own = [m for m in page["results"] if m["sender"] == client.user["id"]]
                assert all(m["status"] == "read" for m in own), f"client {client.index}: not all read in {conversation}"

        counts = sim.counts
        summary = {
            "seed": seed,
            "seconds": round(time.monotonic() - started, 1),
            "users": USERS,
            "conversations": len(by_conversation),
            "messages stored": len(stored),
            "user messages (each client_id once)": len(user_messages),
            "deliveries checked (recipient x message)": sum(
                len(by_conversation[c]) for client in clients for c in client.conversations),
            "own messages seen read": sum(len(c.confirmed) for c in clients),
            "... of them read seen live": sum(len(c.read_seen_live) for c in clients),
            "watermark samples": sampler.samples,
            **dict(sorted(counts.items())),
        }
        with capsys.disabled():
            print("\nsoak: " + json.dumps(summary, indent=1))
        assert counts["server SIGKILLs"] == 1 and counts["redis restarts"] == 1
        # Real time did most of the work; history only filled what the faults lost.
        assert counts["messages held via history"] < 0.5 * summary["deliveries checked (recipient x message)"]
        assert counts["client disconnects"] > 0 and counts["retries of confirmed messages"] > 0
        # Redis is not on a send's path: while it was down sends were stored and answered.
        assert counts["server_error answers (sends retried)"] == 0
        assert counts["message.sent while Redis was down"] > 0
    finally:
        sampler.stop.set()
        for client in clients:
            if client.ws is not None:
                try:
                    await asyncio.wait_for(client.ws.close(), 1)
                except Exception:
                    pass
        for server in servers:
            server.kill()
        try:
            database.drop()
        finally:
            for server in servers:
                print(f"--- {server.server} #{server.number} (port {server.port}) log tail ---\n{server.log_tail()}")
