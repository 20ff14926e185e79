"""Start a coroutine at once, in the caller, instead of in a task a turn of the event loop later.

A message to a group of 50 is written to 49 sockets. As a task each, every write waited for the
next turn of the loop and then cost a task's creation and scheduling; yet a write almost never
has to wait for anything (Daphne buffers it; uvicorn waits only while the socket pushes back).
Run in the publisher's own call, the group's writes are done by the time the sender is answered:
in alternating benchmark runs that took 10-30% off group messages' latency (docs/performance.md,
change 23).

The same goes for the events a database call on the event loop published (broker.publish.send_collected):
started as the call returns, they reach the in-process layer's sockets before the sender is answered.

Python 3.12 has this as `asyncio.eager_task_factory`; this project runs on 3.11, so here is the
small part of it needed: run the coroutine until it finishes or first has to wait, and hand what
is left, if anything, to the caller as an awaitable.
"""

import asyncio
from collections.abc import Coroutine
from typing import Any


def start_eagerly(coroutine: Coroutine[Any, Any, Any]) -> Coroutine[Any, Any, Any] | None:
    """Run `coroutine` now, up to its first wait. None if it finished without one; otherwise an
    awaitable that finishes it (await it, or make it a task). Its exception, if it raises before
    any wait, is raised here."""
    try:
        awaited = coroutine.send(None)
    except StopIteration:
        return None
    return _finish(coroutine, awaited)


async def _finish(coroutine: Coroutine[Any, Any, Any], awaited: Any) -> Any:
    """Go on with a coroutine stopped at `awaited`: what it yielded to the event loop, as a task
    would (a future to wait for, or None for a bare turn of the loop)."""
    while True:
        try:
            if awaited is None:
                await asyncio.sleep(0)
            elif asyncio.isfuture(awaited) and getattr(awaited, "_asyncio_future_blocking", False):
                awaited._asyncio_future_blocking = False
                await asyncio.wait([awaited])  # the coroutine reads the outcome itself when resumed
            else:
                awaited = coroutine.throw(RuntimeError(f"a coroutine started eagerly yielded {awaited!r}"))
                continue
        except asyncio.CancelledError:
            coroutine.close()  # its `finally` blocks run, as they would in a cancelled task
            raise
        try:
            awaited = coroutine.send(None)
        except StopIteration as done:
            return done.value
