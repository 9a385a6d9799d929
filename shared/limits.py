"""Token buckets keyed by client, in memory, per process (each replica limits on its own)."""

from __future__ import annotations

import time
from collections import OrderedDict


class RateLimiter:
    def __init__(self, per_second: float, burst: int, max_keys: int = 100_000) -> None:
        self._rate = per_second
        self._burst = float(burst)
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, key: str) -> bool:
        """Take one token for `key`; False when its bucket is empty."""
        now = time.monotonic()
        tokens, last = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)  # forget the longest-idle client
        return allowed

    def retry_after(self) -> float:
        return 1.0 / self._rate
