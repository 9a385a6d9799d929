"""Stopping background tasks: the tasks' own cancellation is expected, the caller's is not
swallowed."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from shared.aio import cancel_and_wait, wait_finished


async def test_a_caller_cancelled_while_it_waits_is_cancelled() -> None:
    child = asyncio.create_task(asyncio.sleep(10))
    caller = asyncio.create_task(wait_finished(child))
    await asyncio.sleep(0.01)
    caller.cancel()
    await asyncio.wait({caller}, timeout=1)
    assert caller.cancelled()
    child.cancel()


async def test_the_suppress_idiom_would_have_swallowed_it() -> None:
    """The idiom the helpers replace: the caller's cancellation is lost and it carries on."""

    async def old_stop(task: asyncio.Task[None]) -> str:
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return "carried on"

    child = asyncio.create_task(asyncio.sleep(10))
    caller = asyncio.create_task(old_stop(child))
    await asyncio.sleep(0.01)
    caller.cancel()
    await asyncio.wait({caller}, timeout=1)
    assert not caller.cancelled() and caller.result() == "carried on"


async def test_cancel_and_wait_ends_the_tasks_and_skips_none() -> None:
    tasks = [asyncio.create_task(asyncio.sleep(10)) for _ in range(3)]
    await cancel_and_wait(*tasks, None)
    assert all(task.cancelled() for task in tasks)


async def test_a_task_that_failed_raises_its_error() -> None:
    async def fail() -> None:
        raise ValueError("boom")

    task = asyncio.create_task(fail())
    with pytest.raises(ValueError, match="boom"):
        await wait_finished(task)
