"""The load generator: one asyncio process of `websockets` clients that speaks the messenger protocol.

It reads a JSON spec (a file named on the command line, or stdin), runs it against the servers the
spec names and prints one JSON result on stdout. bench/run.py drives it; each scenario is its own
process, so the generator never shares an interpreter (or a GIL) with a server.

kinds of spec:

- "chat": connect `users` users (tokens from the plan; user i to server `ws[i % len(ws)]`), either
  in pairs (direct conversations) or in groups of 50, then for each step send `rate` messages per
  second in total, open loop (scheduled times, random sender), for `warmup + duration` seconds.
  Measured per step, after the warmup: sender's `message.send` to each recipient's `message.new`
  (end to end), and `message.send` to the sender's `message.sent`. Recipients acknowledge what they
  hold every `ack_every` seconds (0: once, at the end), as a client would. With `stop_p99_ms` the
  steps are a ramp that stops at the first step with a loss or a p99 over it; `retry_failed_step`
  runs such a step once more first.
- "idle": open `connections` websockets that send nothing; report the server processes' memory
  (RSS from /proc) before and after, per connection, and whether the connections are all alive.
- "history": `requests` sequential GETs of history pages (newest, `before_seq`, `after_seq`) in
  the seeded conversations of 10,000 messages; report latency percentiles.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import json
import os
import random
import resource
import sys
import time
import uuid
from collections import Counter
from urllib.parse import urlsplit

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

perf = time.perf_counter


def percentiles(samples: list[float]) -> dict:
    """Nearest-rank p50/p95/p99/max in milliseconds of samples in seconds."""
    if not samples:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    ordered = sorted(samples)
    n = len(ordered)

    def rank(p: float) -> float:
        return round(ordered[min(n - 1, max(0, int(p * n + 0.999999) - 1))] * 1000, 2)

    return {"n": n, "p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99), "max": round(ordered[-1] * 1000, 2),
            "mean": round(sum(ordered) / n * 1000, 2)}


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def connect_options() -> dict:
    options = {"open_timeout": 60, "close_timeout": 2, "max_size": 2**20, "max_queue": None, "compression": None,
               "ping_interval": None}
    if "proxy" in inspect.signature(connect).parameters:
        options["proxy"] = None
    return options


class LoopLag:
    """How late the generator's own event loop runs: a late loop inflates every latency it measures."""

    def __init__(self):
        self.samples: list[float] = []
        self.task: asyncio.Task | None = None

    async def _run(self):
        while True:
            start = perf()
            await asyncio.sleep(0.01)
            self.samples.append(max(0.0, perf() - start - 0.01))

    def start(self):
        self.task = asyncio.create_task(self._run())

    def stop(self) -> dict:
        if self.task:
            self.task.cancel()
        return percentiles(self.samples)


def cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError):
        return 0.0


async def settle(pids: list[int], minimum: float, *, below: float = 0.1, timeout: float = 20) -> float:
    """Wait `minimum` seconds, then until the server processes use under `below` of a core."""
    started = perf()
    await asyncio.sleep(minimum)
    while pids and perf() - started < timeout:
        before = sum(cpu_seconds(p) for p in pids)
        await asyncio.sleep(0.5)
        if (sum(cpu_seconds(p) for p in pids) - before) / 0.5 < below:
            break
    return round(perf() - started, 2)


# --- chat -----------------------------------------------------------------------------------------
class Pending:
    __slots__ = ("t", "remaining", "step", "measured", "sent")

    def __init__(self, t, remaining, step, measured):
        self.t, self.remaining, self.step, self.measured, self.sent = t, remaining, step, measured, False


class StepStats:
    def __init__(self, rate: float):
        self.rate = rate
        self.e2e: list[float] = []
        self.sent_latency: list[float] = []
        self.sends = 0
        self.measured_sends = 0
        self.expected = 0
        self.delivered = 0
        self.sent_replies = 0
        self.send_lag: list[float] = []
        self.errors: Counter = Counter()
        self.wall = 0.0

    def result(self, lost: int, measured_seconds: float) -> dict:
        return {
            "rate": self.rate,
            "sends": self.sends,
            "measured_sends": self.measured_sends,
            "achieved_rate": round(self.measured_sends / measured_seconds, 1) if measured_seconds else None,
            "expected_deliveries": self.expected,
            "deliveries": self.delivered,
            "delivered_per_second": round(len(self.e2e) / measured_seconds, 1) if measured_seconds else None,
            "lost": lost,
            "sent_replies": self.sent_replies,
            "e2e": percentiles(self.e2e),
            "sent": percentiles(self.sent_latency),
            "send_lag": percentiles(self.send_lag),
            "errors": dict(self.errors),
        }


class Conn:
    __slots__ = ("index", "user_id", "token", "url", "ws", "conversation", "recipients", "max_seq", "acked", "closed")

    def __init__(self, index, user_id, token, url, conversation, recipients):
        self.index, self.user_id, self.token, self.url = index, user_id, token, url
        self.conversation, self.recipients = conversation, recipients
        self.ws = None
        self.max_seq: dict[int, int] = {}
        self.acked: dict[int, int] = {}
        self.closed = False


class Chat:
    def __init__(self, spec: dict, plan: dict):
        self.spec = spec
        users = int(spec["users"])
        mode = spec["mode"]
        chosen = plan["users"][:users]
        if len(chosen) < users:
            raise SystemExit(f"the plan has {len(plan['users'])} chat users, fewer than {users}")
        size = 2 if mode == "pairs" else plan["group_size"]
        if users % size:
            raise SystemExit(f"{users} users do not divide into {mode} of {size}")
        conversations = plan["pairs"] if mode == "pairs" else plan["groups"]
        self.conns: list[Conn] = []
        for i, user in enumerate(chosen):
            conversation_id, members = conversations[i // size]
            assert user["id"] in members
            url = spec["ws"][i % len(spec["ws"])]
            self.conns.append(Conn(i, user["id"], user["token"], url, conversation_id, len(members) - 1))
        self.pending: dict[str, Pending] = {}
        self.tag = uuid.uuid4().hex[:8]
        self.counter = 0
        self.text = ("bench " * 40)[: int(spec.get("text_bytes", 60))]
        self.errors: Counter = Counter()
        self.readers: list[asyncio.Task] = []
        self.ack_tasks: list[asyncio.Task] = []

    async def _reader(self, conn: Conn):
        loads = json.loads
        pending = self.pending
        try:
            async for raw in conn.ws:
                now = perf()
                event = loads(raw)
                kind = event.get("type")
                if kind == "message.new":
                    message = event["message"]
                    conversation, seq = message["conversation"], message["seq"]
                    if seq > conn.max_seq.get(conversation, 0):
                        conn.max_seq[conversation] = seq
                    item = pending.get(message["client_id"])
                    if item is not None:
                        item.step.delivered += 1
                        if item.measured:
                            item.step.e2e.append(now - item.t)
                        item.remaining -= 1
                        if item.remaining <= 0 and item.sent:
                            del pending[message["client_id"]]
                elif kind == "message.sent":
                    message = event["message"]
                    conversation, seq = message["conversation"], message["seq"]
                    if seq > conn.max_seq.get(conversation, 0):
                        conn.max_seq[conversation] = seq
                    item = pending.get(event["client_id"])
                    if item is not None:
                        item.step.sent_replies += 1
                        if item.measured:
                            item.step.sent_latency.append(now - item.t)
                        item.sent = True
                        if item.remaining <= 0:
                            del pending[event["client_id"]]
                elif kind == "error":
                    self.errors[event.get("code")] += 1
        except ConnectionClosed:
            pass
        finally:
            conn.closed = True

    async def _acker(self, conn: Conn, every: float):
        await asyncio.sleep(random.random() * every)
        while not conn.closed:
            await self._ack(conn)
            await asyncio.sleep(every)

    async def _ack(self, conn: Conn):
        for conversation, seq in list(conn.max_seq.items()):
            if seq > conn.acked.get(conversation, 0):
                conn.acked[conversation] = seq
                try:
                    await conn.ws.send(json.dumps({"type": "ack", "conversation": conversation, "seq": seq}))
                except ConnectionClosed:
                    return

    async def connect_all(self) -> dict:
        started = perf()
        limit = asyncio.Semaphore(int(self.spec.get("connect_concurrency", 100)))
        options = connect_options()
        failures: Counter = Counter()

        async def one(conn: Conn):
            async with limit:
                for attempt in range(3):
                    try:
                        conn.ws = await connect(f"{conn.url}/ws/v1/?token={conn.token}", **options)
                        return
                    except Exception as exc:  # counted and retried; reported if it keeps failing
                        failures[type(exc).__name__] += 1
                        await asyncio.sleep(0.2 * (attempt + 1))

        await asyncio.gather(*(one(c) for c in self.conns))
        missing = sum(1 for c in self.conns if c.ws is None)
        if missing:
            raise SystemExit(f"{missing} of {len(self.conns)} connections failed: {dict(failures)}")
        for conn in self.conns:
            self.readers.append(asyncio.create_task(self._reader(conn)))
        return {"connections": len(self.conns), "seconds": round(perf() - started, 2), "retries": dict(failures)}

    async def run_step(self, rate: float, warmup: float, duration: float, drain: float) -> dict:
        step = StepStats(rate)
        total = int(rate * (warmup + duration))
        warm = int(rate * warmup)
        senders = self.conns
        rng = random.Random(rate)
        start = perf() + 0.02
        dumps = json.dumps
        k = 0
        while k < total:
            now = perf()
            due = min(total, int((now - start) * rate) + 1)
            if due <= k:
                await asyncio.sleep(max(0.0, start + k / rate - now))
                continue
            while k < due:
                conn = senders[rng.randrange(len(senders))]
                if conn.closed:
                    step.errors["closed"] += 1
                    k += 1
                    continue
                self.counter += 1
                client_id = f"{self.tag}-{self.counter}"
                measured = k >= warm
                t = perf()
                step.send_lag.append(max(0.0, t - (start + k / rate)))
                self.pending[client_id] = Pending(t, conn.recipients, step, measured)
                step.sends += 1
                step.expected += conn.recipients
                if measured:
                    step.measured_sends += 1
                try:
                    await conn.ws.send(dumps({"type": "message.send", "client_id": client_id,
                                              "conversation": conn.conversation, "text": self.text}))
                except ConnectionClosed:
                    step.errors["closed"] += 1
                k += 1
            await asyncio.sleep(0)
        step.wall = perf() - start
        deadline = perf() + drain
        while perf() < deadline and any(p.step is step for p in self.pending.values()):
            await asyncio.sleep(0.05)
        lost = 0
        for client_id, item in list(self.pending.items()):
            if item.step is step:
                lost += item.remaining
                del self.pending[client_id]
        step.errors.update(self.errors)
        self.errors.clear()
        return step.result(lost, duration)

    async def close_all(self):
        for task in self.ack_tasks:
            task.cancel()
        await asyncio.gather(*(self._ack(c) for c in self.conns if not c.closed), return_exceptions=True)
        await asyncio.sleep(float(self.spec.get("after_ack", 1.0)))
        for start in range(0, len(self.conns), 200):
            await asyncio.gather(*(c.ws.close() for c in self.conns[start:start + 200] if c.ws), return_exceptions=True)
        for task in self.readers:
            task.cancel()

    async def run(self) -> dict:
        connected = await self.connect_all()
        # Connecting makes work (presence, catch-up); measure once the servers have done it.
        connected["settle_seconds"] = await settle(self.spec.get("server_pids", []), float(self.spec.get("settle", 1.0)))
        every = float(self.spec.get("ack_every", 0))
        if every > 0:
            self.ack_tasks = [asyncio.create_task(self._acker(c, every)) for c in self.conns]
        lag = LoopLag()
        lag.start()
        steps = []
        stop_p99 = self.spec.get("stop_p99_ms")
        for s in self.spec["steps"]:
            # A failed step of a ramp is run once more before the ramp stops: on a shared 2-core
            # machine a single stall of another process ended ramps far below what they reached in
            # the next run (docs/performance.md). Both attempts are reported.
            attempts = []
            for _ in range(1 + int(self.spec.get("retry_failed_step", 0) if stop_p99 is not None else 0)):
                if attempts:
                    await asyncio.sleep(float(s.get("pause", 0.5)))
                result = await self.run_step(float(s["rate"]), float(s.get("warmup", 2)), float(s["duration"]),
                                             float(s.get("drain", 3)))
                result["ok"] = result["lost"] == 0 and result["e2e"]["p99"] is not None and (
                    stop_p99 is None or result["e2e"]["p99"] < stop_p99)
                attempts.append(result)
                if result["ok"]:
                    break
            if len(attempts) > 1:
                result["earlier_attempts"] = attempts[:-1]
            steps.append(result)
            if stop_p99 is not None and not result["ok"]:
                break
            await asyncio.sleep(float(s.get("pause", 0.5)))
        loop_lag = lag.stop()
        await self.close_all()
        return {"connect": connected, "steps": steps, "loop_lag": loop_lag}


# --- idle -----------------------------------------------------------------------------------------
async def run_idle(spec: dict, plan: dict) -> dict:
    count = int(spec["connections"])
    users = plan["idle"][:count]
    if len(users) < count:
        raise SystemExit(f"the plan has {len(plan['idle'])} idle users, fewer than {count}")
    pids = [int(p) for p in spec.get("server_pids", [])]
    gc.collect()
    await asyncio.sleep(0.5)
    before = sum(rss_mb(p) for p in pids)
    own_before = rss_mb(os.getpid())
    options = connect_options()
    limit = asyncio.Semaphore(int(spec.get("connect_concurrency", 100)))
    sockets: list = [None] * count
    failures: Counter = Counter()
    connect_latency: list[float] = []

    async def one(i: int, user: dict):
        url = spec["ws"][i % len(spec["ws"])]
        async with limit:
            for attempt in range(3):
                t = perf()
                try:
                    sockets[i] = await connect(f"{url}/ws/v1/?token={user['token']}", **options)
                    connect_latency.append(perf() - t)
                    return
                except Exception as exc:
                    failures[type(exc).__name__] += 1
                    await asyncio.sleep(0.5 * (attempt + 1))

    started = perf()
    await asyncio.gather(*(one(i, u) for i, u in enumerate(users)))
    connect_seconds = perf() - started
    await asyncio.sleep(float(spec.get("hold", 3)))
    after = sum(rss_mb(p) for p in pids)
    open_now = [ws for ws in sockets if ws is not None]
    # Liveness: a ping on a sample must come back from the server through each connection.
    sample = random.Random(1).sample(open_now, min(200, len(open_now)))
    alive = 0
    for ws in sample:
        try:
            await asyncio.wait_for(await ws.ping(), 5)
            alive += 1
        except Exception:
            pass
    own_after = rss_mb(os.getpid())
    for start in range(0, len(open_now), 500):
        await asyncio.gather(*(ws.close() for ws in open_now[start:start + 500]), return_exceptions=True)
    held = len(open_now)
    return {
        "requested": count,
        "held": held,
        "failures": dict(failures),
        "connect_seconds": round(connect_seconds, 2),
        "connects_per_second": round(held / connect_seconds, 1) if connect_seconds else None,
        "connect_latency": percentiles(connect_latency),
        "ping_sample": len(sample),
        "ping_alive": alive,
        "server_rss_before_mb": round(before, 1),
        "server_rss_after_mb": round(after, 1),
        "server_kib_per_connection": round((after - before) * 1024 / held, 1) if held else None,
        "loadgen_kib_per_connection": round((own_after - own_before) * 1024 / held, 1) if held else None,
    }


# --- history --------------------------------------------------------------------------------------
async def http_get(base: str, path: str, token: str) -> tuple[int, bytes]:
    url = urlsplit(base)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write((f"GET {path} HTTP/1.1\r\nHost: {url.hostname}:{url.port}\r\nAuthorization: Bearer {token}\r\n"
                      "Accept: application/json\r\nConnection: close\r\n\r\n").encode())
        await writer.drain()
        raw = await reader.read(-1)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    return status, body


async def run_history(spec: dict, plan: dict) -> dict:
    history = plan["history"]
    token = history["user"]["token"]
    per = history["per_conversation"]
    rng = random.Random(7)
    requests = int(spec.get("requests", 1000))
    warmup = int(spec.get("warmup_requests", 30))
    latencies: list[float] = []
    statuses: Counter = Counter()
    by_kind: dict[str, list[float]] = {"newest": [], "before_seq": [], "after_seq": []}
    for i in range(requests + warmup):
        conversation_id = rng.choice(history["conversations"])
        kind = ("newest", "before_seq", "after_seq")[i % 3]
        query = "limit=50"
        if kind == "before_seq":
            query += f"&before_seq={rng.randint(2, per)}"
        elif kind == "after_seq":
            query += f"&after_seq={rng.randint(0, per - 1)}"
        base = spec["http"][i % len(spec["http"])]
        t = perf()
        status, body = await http_get(base, f"/api/v1/conversations/{conversation_id}/messages?{query}", token)
        elapsed = perf() - t
        statuses[status] += 1
        if status == 200 and i == warmup:
            page = json.loads(body)
            if not page["results"]:
                raise SystemExit(f"empty history page from {base}")
        if i >= warmup:
            latencies.append(elapsed)
            by_kind[kind].append(elapsed)
    return {"requests": requests, "statuses": {str(k): v for k, v in statuses.items()}, "latency": percentiles(latencies),
            "by_kind": {k: percentiles(v) for k, v in by_kind.items()}}


async def amain(spec: dict) -> dict:
    with open(spec["plan"]) as f:
        plan = json.load(f)
    started, cpu_started = perf(), time.process_time()
    if spec["kind"] == "chat":
        result = await Chat(spec, plan).run()
    elif spec["kind"] == "idle":
        result = await run_idle(spec, plan)
    elif spec["kind"] == "history":
        result = await run_history(spec, plan)
    else:
        raise SystemExit(f"unknown kind {spec['kind']!r}")
    result["loadgen"] = {"wall_seconds": round(perf() - started, 2), "cpu_seconds": round(time.process_time() - cpu_started, 2),
                         "rss_mb": round(rss_mb(os.getpid()), 1), "event_loop": type(asyncio.get_running_loop()).__module__}
    return result


def main() -> None:
    spec = json.load(open(sys.argv[1]) if len(sys.argv) > 1 else sys.stdin)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop  # the generator is a measuring tool: the faster its loop, the less it distorts
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    if spec.get("loop") == "asyncio":
        runner = asyncio.run
    result = runner(asyncio.wait_for(amain(spec), float(spec.get("timeout", 600))))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
