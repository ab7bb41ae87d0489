"""Scopes parse strictly; drain classification is a pure function of times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from clearance.control.drain import DrainState, drain_deadline, drain_state
from clearance.control.scope import Level, Scope
from clearance.control.times import iso
from clearance.errors import RequestError

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("key", ["all", "agent:bot", "tool:pay_vendor", "environment:production"])
def test_scope_round_trips(key: str) -> None:
    assert Scope.parse(key).key == key


@pytest.mark.parametrize(
    "key", ["", "agent:", "everything", "all:x", "environment:moon", "host:x", "agent"]
)
def test_bad_scopes_are_refused(key: str) -> None:
    with pytest.raises(RequestError):
        Scope.parse(key)


def test_levels_order() -> None:
    assert Level.HALT.strength > Level.BREAKER.strength > Level.DRAIN.strength


def test_drain_states() -> None:
    began, deadline = iso(T0), iso(drain_deadline(T0, 60))
    before, after = iso(T0 - timedelta(seconds=1)), iso(T0)
    assert (
        drain_state(began=began, deadline=deadline, session_opened=before, now=T0)
        is DrainState.IN_FLIGHT
    )
    assert (
        drain_state(began=began, deadline=deadline, session_opened=after, now=T0)
        is DrainState.NEW_SESSION
    )
    late = T0 + timedelta(seconds=60)
    assert (
        drain_state(began=began, deadline=deadline, session_opened=before, now=late)
        is DrainState.EXPIRED
    )


@pytest.mark.parametrize("timeout", [0, -5])
def test_drain_timeout_must_be_positive(timeout: float) -> None:
    with pytest.raises(RequestError):
        drain_deadline(T0, timeout)
