"""The benchmark: start servers, seed them, run the load generator against each, print a table and
write bench/results/bench-<time>.json. `make bench` runs it; BENCH_QUICK=1 (or --quick) runs a
smaller version in a few minutes. See docs/performance.md for what is measured and why.

Targets, each with the same scenarios (bench/loadgen.py, a separate process, drives them):

- relay: bench/relay.py, a bare relay written only with the websockets library (the baseline);
- embedded/daphne, embedded/uvicorn: one server process on SQLite with the in-memory channel layer;
- scaleout/daphne (and scaleout/uvicorn in the full run): two server processes on PostgreSQL and
  Redis, users spread over both, so every delivery crosses Redis;
- scaleout/relay (full run, latency only): the scaled-out floor, two bare relays that store each
  message in PostgreSQL and publish it through Redis (bench/relay.py), a second baseline.

Only 127.0.0.1 is used; every process started is killed at the end, and the throwaway databases
(SQLite files under var/bench, PostgreSQL databases messenger_bench_*) and Redis keys are removed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.live_server import HOST, LiveDatabase, ServerProcess, free_port  # noqa: E402

PYTHON = sys.executable
BENCH = ROOT / "bench"
BASELINES = {"relay", "scaleout/relay"}  # measured for comparison, not held to the targets
GROUP = 50


# --- configuration --------------------------------------------------------------------------------
def scenarios(quick: bool) -> dict:
    """What each target runs. Rates are messages sent per second by all users together."""
    duration = 3 if quick else 4
    latency = [
        # (name, mode, users, rate)
        ("pairs@2", "pairs", 2, 10),
        ("pairs@100", "pairs", 100, 50),
        ("pairs@1000", "pairs", 1000, 200),
        ("groups@50", "groups", 50, 4),
        ("groups@100", "groups", 100, 8),
        ("groups@1000", "groups", 1000, 40),
    ]
    return {
        "latency": [{"name": n, "mode": m, "users": u, "rate": r, "warmup": 1, "duration": duration}
                    for n, m, u, r in latency],
        # Each latency figure is the median of this many rounds (each round: every target once).
        "latency_rounds": 1 if quick else 3,
        "throughput": {
            # from 100/s, which scaled out on this machine passes where 250/s did not
            "pairs": {"users": 1000, "rates": [100, 150, 200, 250, 350, 500, 650, 800, 1000, 1200, 1500, 2000, 3000, 4000],
                      "warmup": 1, "duration": 2 if quick else 4},
            "groups": {"users": 1000, "rates": [20, 40, 60, 80, 120, 160, 250],
                       "warmup": 1, "duration": 2 if quick else 4},
        },
        "idle_connections": 2000 if quick else 10000,
        "history_requests": 300 if quick else 1000,
        "seed": {"chat_users": 1000, "idle_users": 2000 if quick else 10000,
                 "history_conversations": 20 if quick else 100, "history_per_conversation": 5000 if quick else 10000},
    }


# --- processes ------------------------------------------------------------------------------------
class BenchDatabase(LiveDatabase):
    """tests/live_server.LiveDatabase, told explicitly which services to use (not the environment)."""

    def __init__(self, workdir: Path, *, database_url: str = "", redis_url: str = ""):
        super().__init__(workdir)
        self.base_url = database_url
        self.redis_url = redis_url
        self.name = f"messenger_bench_{self.token}" if database_url else str(workdir / "bench.sqlite3")
        self.prefix = f"bench-{self.token}"

    def env(self) -> dict[str, str]:
        env = super().env()
        env.pop("REDIS_URL", None)
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        # The load is many users at modest rates; the per-user send limit (60 per 10 s by default)
        # would refuse the throughput steps, which measure the server, not the limiter's policy.
        env["MESSENGER_SEND_RATE"] = "1000000"
        return env


class BenchServer(ServerProcess):
    def command(self) -> list[str]:
        command = super().command()
        if self.server == "daphne":  # no access log, as uvicorn runs with --no-access-log
            command[1:1] = ["-v", "0"]
        return command


class Relay:
    """bench/relay.py; with `durable` (database URL, Redis URL, channel), the scaled-out floor."""

    def __init__(self, workdir: Path, plan: Path, durable: tuple[str, str, str] | None = None):
        self.workdir, self.plan, self.durable = workdir, plan, durable
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start(self, timeout: float = 30) -> "Relay":
        self.port = free_port()
        log_path = self.workdir / f"relay-{self.port}.log"
        command = [PYTHON, str(BENCH / "relay.py"), "--port", str(self.port), "--plan", str(self.plan)]
        if self.durable:
            database_url, redis_url, channel = self.durable
            command += ["--database-url", database_url, "--redis-url", redis_url, "--channel", channel]
        self.proc = subprocess.Popen(command, cwd=ROOT, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the relay exited: {log_path.read_text()[-2000:]}")
            if b"listening" in log_path.read_bytes():
                return self
            time.sleep(0.1)
        raise RuntimeError("the relay did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError):
        return 0.0


def wait_idle(pids: list[int], *, below: float = 0.1, timeout: float = 60) -> float:
    """Wait until the processes together use less than `below` of a core over 0.5 s."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = sum(cpu_seconds(p) for p in pids)
        time.sleep(0.5)
        if (sum(cpu_seconds(p) for p in pids) - before) / 0.5 < below:
            break
    return round(time.monotonic() - started, 1)


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has been busy (all processes, all cores), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def run_loadgen(spec: dict, timeout: float) -> dict:
    """Run one scenario in a load generator process. Besides its result, record how busy the
    machine was with other work meanwhile (`foreign_cores`: cores used by processes other than
    the servers under test and the generator), since a shared machine makes latencies noisy."""
    spec = {**spec, "timeout": timeout}
    pids = spec.get("server_pids", [])
    wall, busy, servers = time.monotonic(), busy_cpu_seconds(), sum(cpu_seconds(p) for p in pids)
    try:
        result = subprocess.run([PYTHON, str(BENCH / "loadgen.py")], input=json.dumps(spec), capture_output=True,
                                text=True, timeout=timeout + 30, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"the load generator did not finish within {timeout + 30:.0f}s"}
    if result.returncode != 0 or not result.stdout.strip():
        return {"error": f"load generator failed ({result.returncode}): {result.stderr.strip()[-1500:]}"}
    out = json.loads(result.stdout.strip().splitlines()[-1])
    wall = time.monotonic() - wall
    server_cpu = sum(cpu_seconds(p) for p in pids) - servers
    foreign = busy_cpu_seconds() - busy - server_cpu - out.get("loadgen", {}).get("cpu_seconds", 0)
    out["machine"] = {"wall_seconds": round(wall, 1), "server_cores": round(server_cpu / wall, 2),
                      "foreign_cores": round(max(0.0, foreign) / wall, 2), "loadavg": os.getloadavg()[0]}
    return out


# --- one target -----------------------------------------------------------------------------------
class Target:
    def __init__(self, name: str, ws: list[str], http: list[str], pids: list[int], plan: Path):
        self.name, self.ws, self.http, self.pids, self.plan = name, ws, http, pids, plan

    def spec(self, **extra) -> dict:
        return {"plan": str(self.plan), "ws": self.ws, "http": self.http, "server_pids": self.pids, **extra}


def warm_up(target: Target, *, log) -> str | None:
    """Warm the servers up (imports, caches, the database's pages): not recorded."""
    log(f"{target.name}: warm-up")
    warm = run_loadgen(target.spec(kind="chat", mode="pairs", users=100, ack_every=1.0,
                                   steps=[{"rate": 50, "warmup": 0, "duration": 3, "drain": 2}]), timeout=60)
    wait_idle(target.pids, timeout=30)
    return warm.get("error")


def run_latency(target: Target, config: dict, *, log, round_number: int) -> dict:
    """One round of the latency scenarios."""
    out = {}
    for s in config["latency"]:
        log(f"{target.name}: latency {s['name']} at {s['rate']} msg/s (round {round_number} of {config['latency_rounds']})")
        result = run_loadgen(target.spec(
            kind="chat", mode=s["mode"], users=s["users"], ack_every=1.0 if s["mode"] == "pairs" else 0,
            steps=[{"rate": s["rate"], "warmup": s["warmup"], "duration": s["duration"], "drain": 3}],
        ), timeout=120)
        out[s["name"]] = result if "error" in result else {
            **result["steps"][0], "connect": result["connect"], "loop_lag": result["loop_lag"],
            "loadgen": result["loadgen"], "machine": result["machine"]}
        wait_idle(target.pids, timeout=30)
    return out


def combine_rounds(rounds: list[dict]) -> dict:
    """Each scenario's figures over its rounds: every percentile the median of the rounds' values,
    deliveries summed; the rounds themselves are kept beside them."""
    combined = {}
    for name in rounds[0]:
        runs = [r[name] for r in rounds if name in r and "error" not in r[name]]
        if not runs:
            combined[name] = rounds[0][name]
            continue

        def median_of(*path):
            values = []
            for run in runs:
                node = run
                for key in path:
                    node = node.get(key) if isinstance(node, dict) else None
                if node is not None:
                    values.append(node)
            return statistics.median(values) if values else None

        combined[name] = {
            "e2e": {p: median_of("e2e", p) for p in ("p50", "p95", "p99")},
            "sent": {p: median_of("sent", p) for p in ("p50", "p95", "p99")},
            "deliveries": sum(run["deliveries"] for run in runs),
            "expected_deliveries": sum(run["expected_deliveries"] for run in runs),
            "machine": {k: median_of("machine", k) for k in ("server_cores", "foreign_cores")},
            "rounds": len(runs),
            "failed_rounds": len(rounds) - len(runs),
        }
    return combined


def run_target(target: Target, config: dict, *, parts: set[str], log) -> dict:
    out: dict = {"processes": len(target.pids)}
    cpu_before = sum(cpu_seconds(p) for p in target.pids)
    if "idle" in parts:
        wait_idle(target.pids)
        # One process's connections and memory: all sockets go to the first process.
        log(f"{target.name}: {config['idle_connections']} idle connections")
        out["idle"] = run_loadgen(target.spec(kind="idle", ws=target.ws[:1], server_pids=target.pids[:1],
                                              connections=config["idle_connections"], hold=3,
                                              connect_concurrency=100), timeout=300)
        wait_idle(target.pids, timeout=90)
    if "latency" in parts or "throughput" in parts:
        out["warmup_error"] = warm_up(target, log=log)
    if "latency" in parts:
        out["latency_rounds"] = [run_latency(target, config, log=log, round_number=1)]
    if "throughput" in parts:
        out["throughput"] = {}
        for mode, t in config["throughput"].items():
            log(f"{target.name}: throughput, {mode}, stepping {t['rates'][0]}..{t['rates'][-1]} msg/s")
            result = run_loadgen(target.spec(
                kind="chat", mode=mode, users=t["users"], ack_every=1.0 if mode == "pairs" else 0, stop_p99_ms=100,
                retry_failed_step=1,
                steps=[{"rate": r, "warmup": t["warmup"], "duration": t["duration"], "drain": 3, "pause": 1.0}
                       for r in t["rates"]],
            ), timeout=400)
            if "error" in result:
                out["throughput"][mode] = result
            else:
                passing = [s for s in result["steps"] if s["ok"]]
                best = max(passing, key=lambda s: s["rate"]) if passing else None
                out["throughput"][mode] = {
                    "max_rate": best["achieved_rate"] if best else 0,
                    "max_delivered_per_second": best["delivered_per_second"] if best else 0,
                    "p99_at_max": best["e2e"]["p99"] if best else None,
                    "limited_by_steps": bool(best) and best is result["steps"][-1] and len(passing) == len(t["rates"]),
                    "steps": result["steps"], "loop_lag": result["loop_lag"], "loadgen": result["loadgen"],
                    "machine": result["machine"],
                }
            wait_idle(target.pids, timeout=60)
    if "history" in parts:
        log(f"{target.name}: history, {config['history_requests']} requests")
        out["history"] = run_loadgen(target.spec(kind="history", requests=config["history_requests"]), timeout=300)
    out["server_cpu_seconds"] = round(sum(cpu_seconds(p) for p in target.pids) - cpu_before, 1)
    return out


# --- report ---------------------------------------------------------------------------------------
def _fmt(value, digits=1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ratio(value, base) -> str:
    if not value or not base:
        return "-"
    return f"{value / base:.1f}x"


def report(results: dict) -> str:
    targets = results["targets"]
    names = list(targets)
    relay = targets.get("relay", {})
    lines = []

    def table(title, header, rows):
        lines.append(f"\n{title}")
        widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
        lines.append("  ".join(str(h).ljust(w) for h, w in zip(header, widths)))
        lines.append("  ".join("-" * w for w in widths))
        for row in rows:
            lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))

    rows = []
    for scenario in results["config"]["latency"]:
        key = scenario["name"]
        base = relay.get("latency", {}).get(key, {})
        for name in names:
            r = targets[name].get("latency", {}).get(key)
            if not r:
                continue
            if "error" in r:
                rows.append([key, f"{scenario['rate']}/s", name, "error", r["error"][:60]] + [""] * 8)
                continue
            rows.append([key, f"{scenario['rate']}/s", name, _fmt(r["e2e"]["p50"], 2), _fmt(r["e2e"]["p95"], 2),
                         _fmt(r["e2e"]["p99"], 2), _fmt(r["sent"]["p50"], 2), _fmt(r["sent"]["p99"], 2),
                         "" if name == "relay" else _ratio(r["e2e"]["p50"], base.get("e2e", {}).get("p50")),
                         "" if name == "relay" else _ratio(r["e2e"]["p99"], base.get("e2e", {}).get("p99")),
                         f"{r['deliveries']}/{r['expected_deliveries']}",
                         _fmt(r.get("machine", {}).get("server_cores"), 2),
                         _fmt(r.get("machine", {}).get("foreign_cores"), 2)])
    rounds = results["config"].get("latency_rounds", 1)
    table("End-to-end latency, ms (message.send -> each recipient's message.new; and -> sender's message.sent)"
          + (f"; each figure the median of {rounds} rounds" if rounds > 1 else ""),
          ["scenario", "load", "target", "e2e p50", "e2e p95", "e2e p99", "sent p50", "sent p99", "p50 vs relay",
           "p99 vs relay", "delivered", "server cores", "other cores"], rows)

    floor = targets.get("scaleout/relay", {}).get("latency", {})
    rows = []
    for scenario in results["config"]["latency"]:
        base = floor.get(scenario["name"], {})
        for name in names:
            r = targets[name].get("latency", {}).get(scenario["name"])
            if name.startswith("scaleout/") and name not in BASELINES and r and "error" not in r and base.get("e2e"):
                rows.append([scenario["name"], name, _ratio(r["e2e"]["p50"], base["e2e"].get("p50")),
                             _ratio(r["e2e"]["p99"], base["e2e"].get("p99")),
                             _ratio(base["e2e"].get("p50"), relay.get("latency", {}).get(scenario["name"], {})
                                    .get("e2e", {}).get("p50"))])
    if rows:
        table("Scaled out against the scaled-out floor (scaleout/relay: stored in PostgreSQL, through Redis)",
              ["scenario", "target", "p50 vs floor", "p99 vs floor", "floor p50 vs relay"], rows)

    rows = []
    for mode in ("pairs", "groups"):
        base = relay.get("throughput", {}).get(mode, {})
        for name in names:
            r = targets[name].get("throughput", {}).get(mode)
            if not r:
                continue
            if "error" in r:
                rows.append([mode, name, "error", r["error"][:60], "", "", ""])
                continue
            rows.append([mode, name, _fmt(r["max_rate"]), _fmt(r["max_delivered_per_second"]), _fmt(r["p99_at_max"], 2),
                         "" if name == "relay" else _ratio(r["max_delivered_per_second"], base.get("max_delivered_per_second")),
                         "yes" if r.get("limited_by_steps") else ""])
    table("Throughput: highest step with every message delivered and e2e p99 < 100 ms (1,000 users)",
          ["mode", "target", "stored msg/s", "delivered msg/s", "p99 ms", "vs relay", "top step passed"], rows)

    rows = []
    base = relay.get("idle", {})
    for name in names:
        r = targets[name].get("idle")
        if not r:
            continue
        if "error" in r:
            rows.append([name, "error", r["error"][:60], "", "", "", ""])
            continue
        per = r["server_kib_per_connection"]
        rows.append([name, f"{r['held']}/{r['requested']}", f"{r['ping_alive']}/{r['ping_sample']}",
                     _fmt(r["connects_per_second"]), _fmt(per), _fmt(per * 10000 / 1024 if per else None, 0),
                     "" if name == "relay" else _ratio(per, base.get("server_kib_per_connection"))])
    table("Idle websocket connections held by one server process",
          ["target", "held", "alive (ping)", "connects/s", "KiB/conn", "MiB per 10k", "vs relay"], rows)

    rows = []
    base = relay.get("history", {}).get("latency", {})
    for name in names:
        r = targets[name].get("history")
        if not r:
            continue
        if "error" in r:
            rows.append([name, "error", r["error"][:60], "", "", ""])
            continue
        lat = r["latency"]
        rows.append([name, _fmt(lat["p50"], 2), _fmt(lat["p95"], 2), _fmt(lat["p99"], 2),
                     "" if name == "relay" else _ratio(lat["p99"], base.get("p99")), json.dumps(r["statuses"])])
    table(f"History: GET conversations/<id>/messages (limit 50), {results['messages_stored']:,} messages stored",
          ["target", "p50 ms", "p95 ms", "p99 ms", "p99 vs relay", "statuses"], rows)

    lines.append("\nTargets")
    for check in results["checks"]:
        lines.append(f"  [{'met' if check['met'] else 'NOT met' if check['met'] is False else 'n/a'}] "
                     f"{check['target']}: {check['detail']}")
    return "\n".join(lines)


def checks(results: dict) -> list[dict]:
    t = results["targets"]
    out = []

    def get(name, *path):
        node = t.get(name, {})
        for key in path:
            if not isinstance(node, dict):
                return None
            node = node.get(key)
        return node

    for name in t:
        if name in BASELINES:
            continue
        p99s = [get(name, "latency", s, "e2e", "p99") for s in ("pairs@1000", "groups@1000")]
        if all(p is not None for p in p99s):
            out.append({"target": "e2e p99 at 1,000 users < 50 ms", "met": max(p99s) < 50,
                        "detail": f"{name}: pairs {p99s[0]} ms, groups {p99s[1]} ms"})
    for name in t:
        if name.startswith("embedded"):
            best = max(get(name, "throughput", m, "max_delivered_per_second") or 0 for m in ("pairs", "groups"))
            pairs = get(name, "throughput", "pairs", "max_delivered_per_second")
            out.append({"target": ">= 1,500 delivered msg/s (embedded)", "met": best >= 1500,
                        "detail": f"{name}: {best:.0f}/s at best (pairs, 1 delivery per message: {pairs}/s)"})
    for name in t:
        if name in BASELINES:
            continue
        for pct in ("p50", "p99"):
            ratios = []
            for s in results["config"]["latency"]:
                mine, base = get(name, "latency", s["name"], "e2e", pct), get("relay", "latency", s["name"], "e2e", pct)
                if mine and base:
                    ratios.append((round(mine / base, 1), s["name"]))
            if ratios:
                worst = max(ratios)
                out.append({"target": f"latency within 3x of the bare relay ({pct})", "met": worst[0] <= 3,
                            "detail": f"{name}: {pct} ratios " + ", ".join(f"{n} {r}x" for r, n in ratios)})
    for name in t:
        per = get(name, "idle", "server_kib_per_connection")
        held = get(name, "idle", "held")
        if per:
            mib = per * 10000 / 1024
            out.append({"target": "10,000 idle connections under 1 GiB in one process",
                        "met": mib < 1024 and held == results["config"]["idle_connections"] == 10000,
                        "detail": f"{name}: held {held}, {per:.1f} KiB each, {mib:.0f} MiB per 10,000"})
    return out


# --- main -----------------------------------------------------------------------------------------
def reachable(url: str, default_port: int) -> bool:
    import socket

    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or HOST, parsed.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def machine() -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        info["memory_gib"] = round(int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        import channels
        import daphne
        import django
        import uvicorn
        import websockets

        info["versions"] = {"django": django.__version__, "channels": channels.__version__, "daphne": daphne.__version__,
                            "uvicorn": uvicorn.__version__, "websockets": websockets.__version__}
    except ImportError:
        pass
    return info


def main() -> int:
    parser = argparse.ArgumentParser(description="messenger benchmark (see docs/performance.md)")
    parser.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK") == "1")
    parser.add_argument("--targets", default=os.environ.get("BENCH_TARGETS", ""),
                        help="comma-separated subset of relay,embedded/daphne,embedded/uvicorn,scaleout/daphne,"
                             "scaleout/uvicorn,scaleout/relay")
    parser.add_argument("--parts", default=os.environ.get("BENCH_PARTS", "idle,latency,throughput,history"))
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL",
                                                                 "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    parser.add_argument("--latency-rounds", type=int, default=int(os.environ.get("BENCH_LATENCY_ROUNDS", "0")),
                        help="rounds of the latency scenarios, each figure the median of them (default 3; quick 1)")
    parser.add_argument("--out", default=str(BENCH / "results"))
    parser.add_argument("--keep", action="store_true", help="keep var/bench/<run> (databases, logs)")
    args = parser.parse_args()

    def terminated(signum, frame):  # clean up (servers, databases) when stopped, as after an error
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 10,000 sockets per process; inherited
    config = scenarios(args.quick)
    if args.latency_rounds > 0:
        config["latency_rounds"] = args.latency_rounds
    parts = set(args.parts.split(","))
    started = time.monotonic()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    workdir = ROOT / "var" / "bench" / stamp
    workdir.mkdir(parents=True, exist_ok=True)

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", flush=True)

    wanted = ["relay", "embedded/daphne", "embedded/uvicorn", "scaleout/daphne"] + (
        [] if args.quick else ["scaleout/uvicorn", "scaleout/relay"])
    if args.targets:
        wanted = [t for t in args.targets.split(",") if t]
    scaleout_ok = reachable(args.database_url, 5432) and reachable(args.redis_url, 6379)
    if not scaleout_ok and any(t.startswith("scaleout") for t in wanted):
        log(f"PostgreSQL ({args.database_url}) or Redis ({args.redis_url}) unreachable: skipping scale-out targets")
        wanted = [t for t in wanted if not t.startswith("scaleout")]

    results: dict = {"started": stamp, "quick": args.quick, "machine": machine(), "config": config,
                     "loadavg_before": os.getloadavg(), "targets": {}}
    databases: list[BenchDatabase] = []
    processes: list = []

    def seed(database: BenchDatabase, label: str) -> Path:
        plan = workdir / f"plan-{label}.json"
        s = config["seed"]
        log(f"{label}: migrate and seed ({s['history_conversations'] * s['history_per_conversation']:,} history messages)")
        database.create(timeout=300)
        subprocess.run([PYTHON, str(BENCH / "seed.py"), "--plan", str(plan), "--chat-users", str(s["chat_users"]),
                        "--idle-users", str(s["idle_users"]), "--history-conversations", str(s["history_conversations"]),
                        "--history-per-conversation", str(s["history_per_conversation"])],
                       cwd=ROOT, env=database.env(), check=True, timeout=600)
        return plan

    def start_servers(database: BenchDatabase, server: str, count: int) -> list[BenchServer]:
        started_servers = []
        for _ in range(count):
            process = BenchServer(database, server)
            processes.append(process)
            started_servers.append(process.start(timeout=60))
        return started_servers

    exit_code = 0
    try:
        embedded = BenchDatabase(workdir / "embedded")
        databases.append(embedded)
        embedded_plan = seed(embedded, "embedded")
        results["messages_stored"] = json.loads(embedded_plan.read_text())["messages_stored"]
        scaleout_plan = None
        scaleout = None
        if any(t.startswith("scaleout") for t in wanted):
            scaleout = BenchDatabase(workdir / "scaleout", database_url=args.database_url, redis_url=args.redis_url)
            databases.append(scaleout)
            scaleout_plan = seed(scaleout, "scaleout")

        def start_target(name: str) -> tuple[Target, list]:
            if name == "relay":
                relay = Relay(workdir, embedded_plan).start()
                processes.append(relay)
                return Target(name, [f"ws://{HOST}:{relay.port}"], [f"http://{HOST}:{relay.port}"], [relay.pid],
                              embedded_plan), [relay]
            if name == "scaleout/relay":  # one after the other: the first makes the tables
                durable = (scaleout.env()["DATABASE_URL"], args.redis_url, f"{scaleout.prefix}-relay")
                relays = []
                for _ in range(2):
                    relays.append(Relay(workdir, scaleout_plan, durable))
                    processes.append(relays[-1])  # killed at the end even if it fails to start
                    relays[-1].start()
                return Target(name, [f"ws://{HOST}:{r.port}" for r in relays], [f"http://{HOST}:{r.port}" for r in relays],
                              [r.pid for r in relays], scaleout_plan), relays
            config_name, server = name.split("/")
            database, plan, count = (embedded, embedded_plan, 1) if config_name == "embedded" else (scaleout, scaleout_plan, 2)
            servers = start_servers(database, server, count)
            return Target(name, [s.ws_url for s in servers], [s.url for s in servers], [s.pid for s in servers], plan), servers

        for name in wanted:
            log(f"--- {name}")
            target, servers = start_target(name)
            # The floor is for the latency ratio; it keeps nothing for history pages.
            target_parts = parts & {"latency"} if name == "scaleout/relay" else parts
            results["targets"][name] = run_target(target, config, parts=target_parts, log=log)
            for process in servers:
                process.kill()
        # The latency scenarios again, target after target, on freshly started servers: the same
        # code moved by half its value from one run to the next on this machine, and the relay's
        # figures are only comparable with what ran in the same minutes (docs/performance.md).
        if "latency" in parts:
            for round_number in range(2, config["latency_rounds"] + 1):
                for name in wanted:
                    log(f"--- {name}, latency round {round_number}")
                    target, servers = start_target(name)
                    warm_up(target, log=log)
                    results["targets"][name]["latency_rounds"].append(
                        run_latency(target, config, log=log, round_number=round_number))
                    for process in servers:
                        process.kill()
    except Exception as exc:  # report what was measured so far
        log(f"benchmark failed: {exc!r}")
        results["error"] = repr(exc)
        exit_code = 1
    finally:
        for process in processes:
            process.kill()
        for database in databases:
            try:
                database.drop()
            except Exception as exc:  # pragma: no cover - cleanup is best effort
                log(f"cleanup of {database.name} failed: {exc!r}")
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    for target_results in results["targets"].values():
        if target_results.get("latency_rounds"):
            target_results["latency"] = combine_rounds(target_results["latency_rounds"])
    results["loadavg_after"] = os.getloadavg()
    results["seconds"] = round(time.monotonic() - started, 1)
    results.setdefault("messages_stored", 0)
    results["checks"] = checks(results)
    text = report(results)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench-{stamp}{'-quick' if args.quick else ''}.json"
    path.write_text(json.dumps(results, indent=1))
    log(f"results written to {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
