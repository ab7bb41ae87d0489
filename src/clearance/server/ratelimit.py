"""Token-bucket rate limits for the login form and the agent API.

Buckets live in memory per process and are keyed by something the caller cannot multiply at will
(an authenticated key id; a client address plus user name for logins). The table is bounded: when
it is full the least recently used bucket is dropped, which can only make a limit looser for an
idle key, never stricter for an active one.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict

from clearance.gate.clock import Clock


class RateLimiter:
    """``rate`` tokens per second up to ``burst``; each allowed call takes one token."""

    def __init__(self, clock: Clock, *, rate: float, burst: int, max_keys: int = 100_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self._clock = clock
        self._rate = rate
        self._burst = float(burst)
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float:
        """Take a token for ``key``: 0.0 when allowed, else the seconds to wait before retrying."""
        now = self._clock.monotonic()
        with self._lock:
            tokens, last = self._buckets.pop(key, (self._burst, now))
            tokens = min(self._burst, tokens + (now - last) * self._rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / self._rate
            while len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        return wait


def retry_after(wait: float) -> str:
    """A ``Retry-After`` header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(wait)))
