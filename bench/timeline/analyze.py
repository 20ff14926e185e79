"""Where a message's time goes inside the servers: the marks bench/timeline/sitecustomize.py wrote,
as each mark's time after the sender's server read the frame (`received`; `handler` on Daphne),
median and 90th percentile over the messages of a run.

    .venv/bin/python bench/timeline/analyze.py FOLDER
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

ORDER = ["queued", "dispatched", "handler", "call0", "stmt0", "stmt1", "call1", "publish0", "write0", "write1", "answered", "publish1"]


def read(folder: Path) -> dict[str, dict[str, int]]:
    """Each message's marks (by client_id): the first of each in time, but `write1`, the last (in
    a group, when the last recipient's frame was written)."""
    messages: dict[str, dict[str, int]] = defaultdict(dict)
    for path in folder.glob("timeline.*"):
        for line in path.read_text().splitlines():
            parts = line.split(" ")
            if len(parts) != 3:
                continue  # a line cut short when the server was killed
            key, mark, at = parts[0], parts[1], int(parts[2])
            seen = messages[key].get(mark)
            if seen is None or (at > seen if mark == "write1" else at < seen):
                messages[key][mark] = at
    return messages


def summary(folder: Path) -> tuple[bool, list[tuple[str, int, float, float]]]:
    """Whether the frames' reads were marked (uvicorn; under Daphne the times count from the
    handler's start), and (mark, messages, p50 us, p90 us) for each mark, in path order."""
    offsets: dict[str, list[float]] = defaultdict(list)
    reads_marked = False
    for marks in read(folder).values():
        reads_marked = reads_marked or "received" in marks
        start = marks.get("received") or marks.get("handler")
        if not start:
            continue
        for mark, at in marks.items():
            if mark in ORDER:
                offsets[mark].append((at - start) / 1000)
    table = []
    for mark in sorted(offsets, key=ORDER.index):
        values = sorted(offsets[mark])
        table.append((mark, len(values), values[len(values) // 2], values[int(len(values) * 0.9)]))
    return reads_marked, table


def report(folder: Path) -> str:
    reads_marked, rows = summary(folder)
    if not rows:
        return "  (no marks: was the server uvicorn or Daphne with this folder on its PYTHONPATH?)"
    since = "after the frame was read" if reads_marked else "after the handler started"
    lines = [f"  {since:24s} {'messages':>8s} {'p50 us':>8s} {'p90 us':>8s}"]
    lines += [f"  {mark:24s} {count:8d} {p50:8.0f} {p90:8.0f}" for mark, count, p50, p90 in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(Path(sys.argv[1])))
