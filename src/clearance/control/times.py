"""Time as text, in the one format the gate writes (RFC 3339 UTC, microseconds, ``Z``).

The control plane never reads a clock: every function takes ``now``. These two helpers only
convert, so stops written here sort and compare like the gate's own timestamps. (The same format
is produced by ``clearance.gate.clock.iso``, which this layer may not import.)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


def iso(ts: datetime) -> str:
    """RFC 3339 UTC with microseconds and ``Z``."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """The inverse of ``iso`` (also accepts any offset ``datetime.fromisoformat`` reads)."""
    return datetime.fromisoformat(text)


class NowSource(Protocol):
    """Anything with ``now()``: the gate's ``Clock`` fits, so does a test's fixed clock."""

    def now(self) -> datetime:
        """Current UTC time."""
        ...
