"""The sync clients: each runs its async twin on an event loop of its own, in a thread.

One implementation per client (the async one), so the two behave the same: reconnects,
resumes and queues happen on that loop while the calling thread does what it likes. Each sync
method is declared as `name = blocking(AsyncTwin.name)`, which keeps the async method's
signature (and documentation) with a plain return value.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class Portal:
    """An event loop in a daemon thread; `call` runs a coroutine there and waits for it."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coroutine: Coroutine[Any, Any, R]) -> R:
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError("a sync client cannot be used from its own callbacks")
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def close(self) -> None:
        if self.loop.is_closed():
            return

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(5)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
        self.loop.close()


class HasTwin:
    """A sync client: `_twin` is the async client it drives through `_portal`."""

    _portal: Portal
    _twin: Any

    def close(self) -> None:
        try:
            self._portal.call(self._twin.close())
        finally:
            self._portal.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def blocking(
    method: Callable[Concatenate[Any, P], Awaitable[R]],
) -> Callable[Concatenate[HasTwin, P], R]:
    """The sync form of an async client's method, with the same name and parameters."""

    @functools.wraps(method)
    def call(self: HasTwin, *args: P.args, **kwargs: P.kwargs) -> R:
        bound = getattr(self._twin, method.__name__)
        return self._portal.call(bound(*args, **kwargs))

    return call
