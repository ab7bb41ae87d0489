"""Time as text, in the one format the gate writes (RFC 3339 UTC, microseconds, ``Z``).

The control plane never reads a clock: every function takes ``now``. These two helpers only
convert, with the same formatter as the gate and the audit log, so stops written here sort and
compare like the gate's own timestamps.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from clearance.formats.entry import format_time

iso = format_time
"""RFC 3339 UTC with microseconds and ``Z`` (AUDIT.md 3.2); naive datetimes are refused."""


def parse_time(text: str) -> datetime:
    """The inverse of ``iso`` (also accepts any offset ``datetime.fromisoformat`` reads)."""
    return datetime.fromisoformat(text)


class NowSource(Protocol):
    """Anything with ``now()``: the gate's ``Clock`` fits, so does a test's fixed clock."""

    def now(self) -> datetime:
        """Current UTC time."""
        ...
