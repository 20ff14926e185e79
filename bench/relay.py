"""The baseline: a bare relay written only with the `websockets` library (no Django, no database).

It speaks the subset of the messenger protocol that the benchmark uses, with the same JSON shapes,
so the load generator cannot tell it from the real server:

- websocket `/ws/v1/?token=...`: `message.send` (answered by `message.sent`, fanned out as
  `message.new` to every other connection of the conversation's members), `ack` and `read`
  (fanned out as `message.status` to every member), `typing` (to the other members);
- `GET /api/v1/conversations/<id>/messages?before_seq=&after_seq=&limit=` from memory, for the
  history figure, and `GET /healthz`.

Users, tokens and conversations come from the plan the seeder wrote (bench/seed.py). Everything is
kept in memory; nothing is durable: this is what "just moving bytes" costs on this machine.

    python bench/relay.py --port 8765 --plan var/bench/plan.json

With `--database-url` and `--redis-url` it is the scaled-out floor (`scaleout/relay` in
bench/run.py): several such processes, each message stored and committed in PostgreSQL before it
is passed on (one statement: the conversation's next seq and the INSERT), receipts stored the same
way, and everything published on one Redis pub/sub channel that every process reads, handing it to
its own connections. That is the least a durable, scaled-out server does for a message, with none
of messenger's checks, and the same `websockets` server as the bare relay. (Two sends in one
conversation at once may be published in the other order than their seqs: it is a floor for
latency, not a server.)

    python bench/relay.py --port 8766 --plan plan.json --database-url postgres://... --redis-url redis://... --channel bench-x
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
from collections import defaultdict
from datetime import datetime, timezone
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import broadcast, serve
from websockets.datastructures import Headers
from websockets.http11 import Response

MAX_FRAME_BYTES = 65536
HISTORY_CREATED_AT = "2026-01-01T00:00:00Z"


def _dumps(event: dict) -> str:
    return json.dumps(event, separators=(",", ":"))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class DurableStore:
    """The floor's PostgreSQL: a few autocommit connections, one statement per message or receipt."""

    TABLES = (
        "CREATE TABLE IF NOT EXISTS relay_conversation (id bigint PRIMARY KEY, last_seq bigint NOT NULL DEFAULT 0)",
        "CREATE TABLE IF NOT EXISTS relay_message (id bigserial PRIMARY KEY, "
        "conversation_id bigint NOT NULL REFERENCES relay_conversation, seq bigint NOT NULL, "
        "sender_id bigint NOT NULL, client_id text NOT NULL, text text NOT NULL, "
        "created_at timestamptz NOT NULL DEFAULT now(), UNIQUE (conversation_id, seq), UNIQUE (sender_id, client_id))",
        "CREATE TABLE IF NOT EXISTS relay_watermark (conversation_id bigint NOT NULL, user_id bigint NOT NULL, "
        "delivered_seq bigint NOT NULL DEFAULT 0, read_seq bigint NOT NULL DEFAULT 0, "
        "PRIMARY KEY (conversation_id, user_id))",
    )
    STORE = ("WITH next AS (UPDATE relay_conversation SET last_seq = last_seq + 1 WHERE id = %s RETURNING last_seq) "
             "INSERT INTO relay_message (conversation_id, seq, sender_id, client_id, text) "
             "SELECT %s, last_seq, %s, %s, %s FROM next RETURNING id, seq")
    WATERMARK = {
        "delivered": "INSERT INTO relay_watermark (conversation_id, user_id, delivered_seq) VALUES (%s, %s, %s) "
                     "ON CONFLICT (conversation_id, user_id) DO UPDATE SET delivered_seq = excluded.delivered_seq "
                     "WHERE relay_watermark.delivered_seq < excluded.delivered_seq RETURNING 1",
        "read": "INSERT INTO relay_watermark (conversation_id, user_id, read_seq) VALUES (%s, %s, %s) "
                "ON CONFLICT (conversation_id, user_id) DO UPDATE SET read_seq = excluded.read_seq "
                "WHERE relay_watermark.read_seq < excluded.read_seq RETURNING 1",
    }

    def __init__(self, url: str, connections: int = 4):
        self.url, self.size = url, connections
        self.idle: asyncio.Queue = asyncio.Queue()

    async def open(self, conversation_ids: list[int]) -> None:
        import psycopg

        for _ in range(self.size):
            self.idle.put_nowait(await psycopg.AsyncConnection.connect(self.url, autocommit=True))
        connection = await self.idle.get()
        try:
            for statement in self.TABLES:
                await connection.execute(statement)
            await connection.execute("INSERT INTO relay_conversation (id) SELECT unnest(%s::bigint[]) "
                                     "ON CONFLICT DO NOTHING", [conversation_ids])
        finally:
            self.idle.put_nowait(connection)

    async def one(self, statement: str, params: list) -> tuple | None:
        connection = await self.idle.get()
        try:
            cursor = await connection.execute(statement, params)
            return await cursor.fetchone()
        finally:
            self.idle.put_nowait(connection)


class Relay:
    def __init__(self, plan: dict, store: DurableStore | None = None, redis=None, channel: str = ""):
        # The floor's (see the module's docstring); neither for the bare relay.
        self.store, self.redis, self.channel, self.origin = store, redis, channel, os.getpid()
        self.user_by_token: dict[str, int] = {}
        self.members: dict[int, list[int]] = {}
        for group in ("users", "idle"):
            for user in plan.get(group, []):
                self.user_by_token[user["token"]] = user["id"]
        for conversation_id, member_ids in plan.get("pairs", []) + plan.get("groups", []):
            self.members[conversation_id] = list(member_ids)
        self.seq: dict[int, int] = defaultdict(int)
        self.watermarks: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
        self.connections: dict[int, set] = defaultdict(set)
        self.client_ids: dict[tuple[int, str], dict] = {}
        self.ids = itertools.count(1)
        # History: the same numbers of messages the seeder stored, held as compact tuples.
        self.history: dict[int, list[tuple]] = {}
        history = plan.get("history")
        if history:
            user = history["user"]
            self.user_by_token[user["token"]] = user["id"]
            per = history["per_conversation"]
            for conversation_id, peer_id in zip(history["conversations"], history["peers"]):
                self.members[conversation_id] = [user["id"], peer_id]
                base = next(self.ids)
                self.ids = itertools.count(base + per)
                senders = (user["id"], peer_id)
                self.history[conversation_id] = [
                    (base + n, n, senders[n % 2], f"h{conversation_id}-{n}", f"history message {n}") for n in range(1, per + 1)
                ]
                self.seq[conversation_id] = per

    # --- websocket ------------------------------------------------------------------------------
    async def handler(self, ws):
        query = parse_qs(urlsplit(ws.request.path).query)
        user_id = self.user_by_token.get((query.get("token") or [""])[0])
        if user_id is None:
            await ws.send(_dumps({"type": "error", "code": "authentication_failed", "message": "bad token",
                                  "frame": None, "ref": None}))
            await ws.close(4001)
            return
        self.connections[user_id].add(ws)
        try:
            async for raw in ws:
                if isinstance(raw, bytes) or len(raw) > MAX_FRAME_BYTES:
                    continue
                try:
                    frame = json.loads(raw)
                    kind = frame.get("type")
                    if kind == "message.send":
                        await self.on_send(ws, user_id, frame)
                    elif kind in ("ack", "read"):
                        await self.on_watermark(user_id, frame, "delivered" if kind == "ack" else "read")
                    elif kind == "typing":
                        await self.on_typing(user_id, frame)
                except (ValueError, KeyError, TypeError, AttributeError):
                    await ws.send(_dumps({"type": "error", "code": "invalid", "message": "bad frame",
                                          "frame": None, "ref": None}))
        finally:
            self.connections[user_id].discard(ws)

    def _sockets(self, user_ids, skip=None) -> list:
        return [ws for uid in user_ids for ws in self.connections.get(uid, ()) if ws is not skip]

    async def _publish(self, user_ids, frame: str) -> None:
        """Scaled out: `frame` to the users' connections in every other process."""
        await self.redis.publish(self.channel, _dumps({"origin": self.origin, "users": user_ids, "frame": frame}))

    async def read_published(self, pubsub) -> None:
        """What the other processes published (on `pubsub`, subscribed to the channel), to this
        process's connections of its users."""
        async for item in pubsub.listen():
            event = json.loads(item["data"])
            if event["origin"] != self.origin:
                broadcast(self._sockets(event["users"]), event["frame"])

    async def on_send(self, ws, user_id: int, frame: dict) -> None:
        conversation_id = frame["conversation"]
        client_id = frame["client_id"]
        members = self.members.get(conversation_id)
        if members is None or user_id not in members:
            await ws.send(_dumps({"type": "error", "code": "not_found", "message": "not a member",
                                  "frame": "message.send", "ref": client_id}))
            return
        message = self.client_ids.get((user_id, client_id))
        if message is None:
            if self.store is not None:
                message_id, seq = await self.store.one(
                    DurableStore.STORE, [conversation_id, conversation_id, user_id, client_id, frame["text"]])
            else:
                self.seq[conversation_id] += 1
                message_id, seq = next(self.ids), self.seq[conversation_id]
            message = {
                "id": message_id, "conversation": conversation_id, "seq": seq,
                "sender": user_id, "kind": "text", "text": frame["text"], "event": None, "client_id": client_id,
                "created_at": _now(), "status": "sent",
            }
            self.client_ids[(user_id, client_id)] = message
            new = _dumps({"type": "message.new", "message": message})
            broadcast(self._sockets(members, skip=ws), new)
            if self.redis is not None:
                await self._publish(members, new)
        await ws.send(_dumps({"type": "message.sent", "client_id": client_id, "message": message}))

    async def on_watermark(self, user_id: int, frame: dict, status: str) -> None:
        conversation_id, seq = frame["conversation"], int(frame["seq"])
        members = self.members.get(conversation_id)
        if members is None or user_id not in members:
            return
        if self.store is not None:  # the stored watermark decides, as several processes move it
            if await self.store.one(DurableStore.WATERMARK[status], [conversation_id, user_id, seq]) is None:
                return
        else:
            marks = self.watermarks[(conversation_id, user_id)]
            index = 0 if status == "delivered" else 1
            if seq <= marks[index]:
                return
            marks[index] = seq
        status_event = _dumps({"type": "message.status", "conversation": conversation_id, "seq": seq,
                               "status": status, "user": user_id})
        broadcast(self._sockets(members), status_event)
        if self.redis is not None:
            await self._publish(members, status_event)

    async def on_typing(self, user_id: int, frame: dict) -> None:
        members = self.members.get(frame["conversation"]) or []
        if user_id in members:
            others = [uid for uid in members if uid != user_id]
            typing = _dumps({"type": "typing", "conversation": frame["conversation"], "user": user_id})
            broadcast(self._sockets(others), typing)
            if self.redis is not None:
                await self._publish(others, typing)

    # --- HTTP -----------------------------------------------------------------------------------
    def _json(self, status: int, body: dict) -> Response:
        data = json.dumps(body, separators=(",", ":")).encode()
        headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                           ("Connection", "close")])
        return Response(status, HTTPStatus(status).phrase, headers, data)

    def process_request(self, connection, request):
        path = urlsplit(request.path)
        if path.path == "/healthz":
            return self._json(200, {"status": "ok"})
        if not path.path.startswith("/api/v1/"):
            return None  # a websocket handshake
        token = request.headers.get("Authorization", "").partition(" ")[2].strip()
        user_id = self.user_by_token.get(token)
        if user_id is None:
            return self._json(401, {"error": {"code": "not_authenticated", "message": "bad token"}})
        parts = path.path.strip("/").split("/")  # api v1 conversations <id> messages
        if len(parts) != 5 or parts[2] != "conversations" or parts[4] != "messages" or not parts[3].isdigit():
            return self._json(404, {"error": {"code": "not_found", "message": "no such page"}})
        conversation_id = int(parts[3])
        rows = self.history.get(conversation_id)
        if rows is None or user_id not in self.members.get(conversation_id, ()):
            return self._json(404, {"error": {"code": "not_found", "message": "no such conversation"}})
        query = {k: int(v[0]) for k, v in parse_qs(path.query).items()}
        limit = min(query.get("limit", 50), 200)
        after, before = query.get("after_seq"), query.get("before_seq")
        # Rows are in seq order with seq n at index n - 1.
        if after is not None:
            start = max(after, 0)
            end = min(len(rows), before - 1 if before is not None else len(rows))
            page = rows[start:min(end, start + limit)]
            has_more = start + limit < end
        else:
            end = min(len(rows), before - 1 if before is not None else len(rows))
            start = max(0, end - limit)
            page = rows[start:end]
            has_more = start > 0
        results = [
            {"id": mid, "conversation": conversation_id, "seq": seq, "sender": sender, "kind": "text", "text": text,
             "event": None, "client_id": cid, "created_at": HISTORY_CREATED_AT, "status": "read"}
            for mid, seq, sender, cid, text in page
        ]
        return self._json(200, {"results": results, "has_more": has_more})


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--plan", required=True)
    parser.add_argument("--database-url", default="", help="the scaled-out floor: store in this PostgreSQL")
    parser.add_argument("--redis-url", default="", help="the scaled-out floor: publish through this Redis")
    parser.add_argument("--channel", default="bench-relay", help="the scaled-out floor's pub/sub channel")
    args = parser.parse_args()
    with open(args.plan) as f:
        plan = json.load(f)
    store = bus = reading = None
    if args.database_url or args.redis_url:
        if not (args.database_url and args.redis_url):
            parser.error("the scaled-out floor needs both --database-url and --redis-url")
        import redis.asyncio as aioredis

        store = DurableStore(args.database_url)
        await store.open([conversation_id for conversation_id, _ in plan.get("pairs", []) + plan.get("groups", [])])
        bus = aioredis.Redis.from_url(args.redis_url)
    relay = Relay(plan, store, bus, args.channel)
    if bus is not None:  # subscribed before it says it is listening
        pubsub = bus.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(args.channel)
        reading = asyncio.create_task(relay.read_published(pubsub))
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    # No compression and no pings: the same as what Daphne offers the load generator.
    async with serve(relay.handler, args.host, args.port, process_request=relay.process_request, compression=None,
                     ping_interval=None, max_size=MAX_FRAME_BYTES, max_queue=64, backlog=2048):
        print(f"relay listening on {args.host}:{args.port}", flush=True)
        await stop
    if reading is not None:
        reading.cancel()


if __name__ == "__main__":
    asyncio.run(main())
