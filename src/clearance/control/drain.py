"""Drain: the graceful stop. No new sessions in scope; in-flight ones finish or time out.

A drain is a stop of level ``drain`` with a deadline. A session opened before the drain began is
*in flight*: its calls are still decided normally until the deadline. A session opened at or after
the drain began is *new* and is refused with rule ``drain``. Once the deadline has passed, the
whole scope is *expired* and the kill switch turns the drain into a halt (saved in the store, so
a restart in between changes nothing). This module is pure: it reads no clock and no store.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from clearance.control.times import parse_time
from clearance.errors import RequestError

#: How long in-flight work may continue after a drain when the operator names no timeout.
DEFAULT_DRAIN_TIMEOUT_S = 300.0


class DrainState(StrEnum):
    """Where one session stands in a drain."""

    NEW_SESSION = "new-session"
    IN_FLIGHT = "in-flight"
    EXPIRED = "expired"


def drain_deadline(now: datetime, timeout_s: float) -> datetime:
    """When a drain started at ``now`` turns into a halt."""
    if not timeout_s > 0:
        raise RequestError(
            f"a drain timeout must be positive, not {timeout_s}",
            hint="give the seconds in-flight work may continue, e.g. 300",
        )
    return now + timedelta(seconds=timeout_s)


def drain_state(*, began: str, deadline: str, session_opened: str, now: datetime) -> DrainState:
    """Classify a session against a drain that ``began`` and ends at ``deadline``."""
    if now >= parse_time(deadline):
        return DrainState.EXPIRED
    if parse_time(session_opened) >= parse_time(began):
        return DrainState.NEW_SESSION
    return DrainState.IN_FLIGHT
