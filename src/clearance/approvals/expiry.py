"""Time arithmetic of approvals: deadlines, expiry, and the one timestamp format.

Time is always an argument (``now``); nothing here reads a clock. Timestamps are stored as RFC 3339
UTC strings with microseconds and ``Z``, the format the gate writes, so string order is time order
and the store can compare them in SQL.

An approval is expired from its ``expires_at`` instant on (``now >= expires_at``): a request is
never approvable, and a token never redeemable, at or after its deadline. An expired pending
request is a DENY and is recorded as such by ``ApprovalService.expire_due``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from clearance.formats.entry import format_time

iso = format_time
"""RFC 3339 UTC with microseconds and ``Z`` (AUDIT.md 3.2); naive datetimes are refused."""


def parse(text: str) -> datetime:
    """The inverse of ``iso``."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def deadline(now: datetime, span: timedelta) -> str:
    """``now + span`` as a stored timestamp."""
    return iso(now + span)


def is_expired(expires_at: str, now: datetime) -> bool:
    """True at and after ``expires_at``."""
    return iso(now) >= expires_at
