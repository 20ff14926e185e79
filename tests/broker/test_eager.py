"""broker.eager: a coroutine started at once runs in its caller until it must wait."""

import asyncio

import pytest

from broker.eager import start_eagerly


async def test_a_coroutine_that_never_waits_is_done_before_start_eagerly_returns():
    done = []

    async def write():
        done.append("written")

    assert start_eagerly(write()) is None
    assert done == ["written"]


async def test_a_coroutine_that_waits_is_finished_by_awaiting_what_is_returned():
    gate = asyncio.Event()
    steps = []

    async def write():
        steps.append("started")
        await gate.wait()
        await asyncio.sleep(0)
        steps.append("finished")
        return "result"

    rest = start_eagerly(write())
    assert steps == ["started"]
    task = asyncio.create_task(rest)
    await asyncio.sleep(0.01)
    assert steps == ["started"] and not task.done()
    gate.set()
    assert await asyncio.wait_for(task, 1) == "result"
    assert steps == ["started", "finished"]


async def test_an_error_before_the_first_wait_is_raised_to_the_caller():
    async def write():
        raise ConnectionResetError("the socket is gone")

    with pytest.raises(ConnectionResetError):
        start_eagerly(write())


async def test_an_error_after_a_wait_is_raised_by_the_rest():
    future = asyncio.get_running_loop().create_future()

    async def write():
        await future  # fails: the awaited future carries the error, as a task would see it

    rest = start_eagerly(write())
    future.set_exception(BrokenPipeError("closed"))
    with pytest.raises(BrokenPipeError):
        await rest


async def test_cancelling_the_rest_runs_the_coroutines_cleanup():
    cleaned = []

    async def write():
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append(True)

    task = asyncio.create_task(start_eagerly(write()))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == [True]
