"""The only module that reads time. Everything else receives ``now`` from a ``Clock``."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

from clearance.formats.entry import format_time

iso = format_time
"""RFC 3339 UTC with microseconds and ``Z`` (AUDIT.md 3.2); naive datetimes are refused."""


class Clock(Protocol):
    """A source of wall-clock and monotonic time."""

    def now(self) -> datetime:
        """Current UTC time."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary start, never going backwards."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """Current UTC time."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()


class FixedClock:
    """A settable clock for tests and replays; ``advance`` moves both wall and monotonic time."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._mono = 0.0

    def now(self) -> datetime:
        """The set time."""
        return self._now

    def monotonic(self) -> float:
        """The set monotonic time."""
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move time forward (a negative value simulates a wall-clock jump backwards)."""
        from datetime import timedelta

        self._now = self._now + timedelta(seconds=seconds)
        self._mono += max(seconds, 0.0)
