"""Typed dependencies for route handlers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request

from shared.broker import Broker
from shared.runtime import Runtime
from shared.settings import Settings

# Coroutines, though they only read app state: FastAPI runs a plain function dependency in
# its thread pool, and two thread hand-offs per request cost the api more CPU than a POST of
# 100 readings spends on its own work (profiled under bench/ingest.py latency).


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_broker(request: Request) -> Broker:
    broker: Broker = request.app.state.broker
    return broker


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
BrokerDep = Annotated[Broker, Depends(get_broker)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET = 50, 500, 10_000_000


class Page:
    def __init__(
        self,
        limit: Annotated[
            int, Query(ge=1, le=MAX_LIMIT, description="Items per page (max 500)")
        ] = DEFAULT_LIMIT,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip")] = 0,
    ) -> None:
        self.limit = limit
        self.offset = offset

    def body(self, name: str, items: list[dict[str, Any]], total: int) -> dict[str, Any]:
        """A list response: `{name: items, "count", "total", "limit", "offset"}`."""
        return {
            name: items,
            "count": len(items),
            "total": total,
            "limit": self.limit,
            "offset": self.offset,
        }


PageDep = Annotated[Page, Depends()]
