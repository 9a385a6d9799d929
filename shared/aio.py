"""Stopping background tasks without swallowing the caller's own cancellation.

The usual idiom, `task.cancel()` then `with suppress(CancelledError): await task`, has a trap:
if the *caller* is cancelled while it waits, its CancelledError is suppressed too, and the
caller carries on as if nothing had happened. A loop that stops a child that way (say, a
rebalance stopping a partition) can then never be cancelled itself, and whatever waits for it
at shutdown waits forever. These helpers wait with `asyncio.wait`, which never raises the
awaited tasks' CancelledError, so only the caller's own cancellation gets through.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def wait_finished(*tasks: asyncio.Task[Any]) -> None:
    """Wait until every task is done. A task that was cancelled is fine; a task that failed
    raises its exception here (the first one, in the order given); a cancellation of the
    caller while it waits propagates."""
    pending = {task for task in tasks if not task.done()}
    if pending:
        await asyncio.wait(pending)
    for task in tasks:
        if not task.cancelled() and (error := task.exception()) is not None:
            raise error


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel the tasks (None is skipped), then `wait_finished` them."""
    started = [task for task in tasks if task is not None]
    for task in started:
        task.cancel()
    await wait_finished(*started)
