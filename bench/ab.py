"""A/B runs of one setting: a chat step against freshly started servers, alternating with and
without an environment variable, each run printing its latency and the CPU each kind of process
used. For a decision about one setting at one load, where `make bench` measures everything.

    .venv/bin/python bench/ab.py MESSENGER_PG_PREPARED_STATEMENTS=0 --rate 150 --runs 3
    .venv/bin/python bench/ab.py MESSENGER_SQLITE_ON_EVENT_LOOP=0 --config embedded --rate 500

Each run makes and seeds its own database (1,000 users: bench/seed.py), starts the servers with
the variable set or unset (A: unset, as deployed; B: set), warms them up, runs one step of
bench/loadgen.py and removes everything again. Same services and defaults as bench/run.py.

`--timeline` also prints, for each run, where a message's time went inside the servers
(bench/timeline/: the median time after the frame was read at which it reached the handler, its
statement, the publish, the recipient's socket and the sender's answer).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import BENCH, PYTHON, ROOT, BenchDatabase, BenchServer, Target, cpu_seconds, run_loadgen, warm_up  # noqa: E402
from bench.timeline.analyze import report  # noqa: E402


@contextlib.contextmanager
def timeline_for_servers(folder: Path | None):
    """Processes started in this block load bench/timeline/sitecustomize.py, which writes its marks
    in `folder` (nothing changes when it is None)."""
    if folder is None:
        yield
        return
    folder.mkdir()
    saved = {name: os.environ.get(name) for name in ("MESSENGER_BENCH_TIMELINE", "PYTHONPATH")}
    os.environ["MESSENGER_BENCH_TIMELINE"] = str(folder)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BENCH / "timeline"), saved["PYTHONPATH"]]))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def process_cpu() -> dict[int, tuple[str, float]]:
    """Every process's name and CPU seconds so far, from /proc."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                out[int(entry)] = (Path(f"/proc/{entry}/comm").read_text().strip(), cpu_seconds(int(entry)))
            except OSError:
                pass
    return out


def one_run(args, workdir: Path) -> dict:
    database = BenchDatabase(workdir, database_url=args.database_url if args.config == "scaleout" else "",
                             redis_url=args.redis_url if args.config == "scaleout" else "")
    plan = workdir / "plan.json"
    servers = []
    try:
        database.create(timeout=300)
        subprocess.run([PYTHON, str(BENCH / "seed.py"), "--plan", str(plan), "--chat-users", str(args.users),
                        "--idle-users", "0", "--history-conversations", "1", "--history-per-conversation", "10"],
                       cwd=ROOT, env=database.env(), check=True, capture_output=True, timeout=300)
        count = 2 if args.config == "scaleout" else 1
        with timeline_for_servers(workdir / "timeline" if args.timeline else None):
            servers = [BenchServer(database, args.server).start(timeout=60) for _ in range(count)]
        target = Target("ab", [s.ws_url for s in servers], [s.url for s in servers], [s.pid for s in servers], plan)
        warm_up(target, log=lambda message: None)
        before, started = process_cpu(), time.monotonic()
        result = run_loadgen(target.spec(
            kind="chat", mode=args.mode, users=args.users, ack_every=1.0 if args.mode == "pairs" else 0,
            steps=[{"rate": args.rate, "warmup": 1, "duration": args.duration, "drain": 3}]), timeout=300)
        wall = time.monotonic() - started
        if "error" in result:
            return {"error": result["error"]}
        cores: dict[str, float] = {}
        for pid, (name, seconds) in process_cpu().items():
            kind = "servers" if pid in target.pids else name
            cores[kind] = cores.get(kind, 0.0) + (seconds - before.get(pid, (name, 0.0))[1]) / wall
        # The generator has exited by now (gone from /proc): it reports its own CPU.
        cores["loadgen"] = result.get("loadgen", {}).get("cpu_seconds", 0.0) / wall
        step = result["steps"][0]
        return {"e2e": step["e2e"], "sent": step["sent"], "delivered": f"{step['deliveries']}/{step['expected_deliveries']}",
                "cores": {k: round(v, 2) for k, v in sorted(cores.items(), key=lambda kv: -kv[1])[:5] if v >= 0.01},
                "timeline": report(workdir / "timeline") if args.timeline else None}
    finally:
        for server in servers:
            server.kill()
        database.drop()


def main() -> int:
    parser = argparse.ArgumentParser(description="A/B runs of one environment variable (docs/performance.md)")
    parser.add_argument("setting", help="NAME=VALUE: B runs with it, A without")
    parser.add_argument("--config", choices=["embedded", "scaleout"], default="scaleout")
    parser.add_argument("--server", choices=["uvicorn", "daphne"], default="uvicorn")
    parser.add_argument("--mode", choices=["pairs", "groups"], default="pairs")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=100, help="messages per second, all users together")
    parser.add_argument("--duration", type=int, default=9, help="seconds measured, after 1 s of warm-up")
    parser.add_argument("--runs", type=int, default=2, help="runs of each, alternating (A first)")
    parser.add_argument("--timeline", action="store_true",
                        help="print where a message's time went inside the servers, for each run (bench/timeline/)")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL",
                                                                 "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    args = parser.parse_args()
    name, _, value = args.setting.partition("=")
    if not name or not _:
        parser.error("the setting must be NAME=VALUE")
    print(f"{args.config}/{args.server}, {args.mode}, {args.users} users, {args.rate} msg/s; A: {name} unset, "
          f"B: {name}={value}", flush=True)
    (ROOT / "var").mkdir(exist_ok=True)
    medians: dict[str, list[float]] = {"A": [], "B": []}
    saved = os.environ.pop(name, None)
    try:
        for number in range(1, args.runs + 1):
            for variant in ("A", "B"):
                if variant == "B":
                    os.environ[name] = value
                else:
                    os.environ.pop(name, None)
                with tempfile.TemporaryDirectory(prefix="bench-ab-", dir=ROOT / "var") as workdir:
                    out = one_run(args, Path(workdir))
                if "error" in out:
                    print(f"{variant} run {number}: error: {out['error'][:300]}", flush=True)
                    continue
                e2e, sent = out["e2e"], out["sent"]
                medians[variant].append(e2e["p50"])
                print(f"{variant} run {number}: e2e p50 {e2e['p50']} p95 {e2e['p95']} p99 {e2e['p99']} ms, "
                      f"sent p50 {sent['p50']} ms, delivered {out['delivered']}, cores {out['cores']}", flush=True)
                if out["timeline"]:
                    print(out["timeline"], flush=True)
    finally:
        os.environ.pop(name, None)
        if saved is not None:
            os.environ[name] = saved
    for variant, values in medians.items():
        if values:
            print(f"{variant}: e2e p50 median of runs {statistics.median(values)} ms ({len(values)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
