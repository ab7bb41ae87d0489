"""Outcome-shift and gate-health alerts.

**Outcome shift.** For each surface (tool) the DENY and SILENCE shares of its decisions are
learned per window (EWMA over windows with at least ``min_samples`` decisions). When the share in
the current window departs from the baseline, by at least ``min_delta`` *and* by a factor of
``ratio`` either way (2% -> 40% DENY, or 40% -> 0%), an alert goes out. That is how a policy
regression shows up within minutes: a rule that suddenly denies everything, or one that stopped
denying anything. Decisions made by a stop (kill switch, drain, breaker) are left out; a halt is
already alerted and is not a policy shift.

**Gate health.** A SILENCE because the audit log or the store failed alerts at once (critical);
so does a SILENCE surge over the whole gate (at least ``silence_surge`` of a window's decisions);
``check_store`` is a probe a background task can run so that an idle gate also reports a dead store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from clearance.control.alerts import Alert, AlertRouter, Severity
from clearance.control.baseline import Ewma
from clearance.control.killswitch import DRAIN_RULE, KILL_SWITCH_RULE
from clearance.control.times import NowSource
from clearance.errors import ClearanceError
from clearance.model.decision import Decision, Outcome
from clearance.model.request import Request
from clearance.model.result import ActionResult
from clearance.store.protocol import SessionState

#: The pseudo-surface that sums every tool (for the SILENCE surge).
GATE = "*"
_WATCHED = (Outcome.DENY, Outcome.SILENCE)
_HEALTH_RULES = {"audit": "the audit log cannot be written", "store": "the store failed"}


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    """Windows and thresholds of the outcome-shift and health alerts."""

    window_s: float = 60.0
    min_samples: int = 20
    warmup_windows: int = 3
    min_delta: float = 0.15
    ratio: float = 2.0
    silence_surge: float = 0.2


@dataclass(slots=True)
class _Window:
    start: float
    total: int = 0
    counts: dict[Outcome, int] = field(default_factory=dict)
    alerted: set[Outcome] = field(default_factory=set)


@dataclass(slots=True)
class _Surface:
    window: _Window
    baselines: dict[Outcome, Ewma] = field(default_factory=lambda: {o: Ewma() for o in _WATCHED})


def departs(rate: float, baseline: float, *, min_delta: float, ratio: float) -> bool:
    """True when ``rate`` moved away from ``baseline`` by ``min_delta`` and by ``ratio``."""
    if abs(rate - baseline) < min_delta:
        return False
    return rate >= baseline * ratio or rate * ratio <= baseline


class OutcomeMonitor:
    """Gate ``Observer`` that alerts on outcome shifts per surface and on gate-health failures."""

    def __init__(
        self,
        alerts: AlertRouter,
        *,
        clock: NowSource,
        config: MonitorConfig | None = None,
    ) -> None:
        self.config = config or MonitorConfig()
        self._alerts = alerts
        self._clock = clock
        self._surfaces: dict[str, _Surface] = {}
        self._lock = threading.Lock()

    def on_decision(self, request: Request, decision: Decision, state: SessionState | None) -> None:
        """Count the decision; alert on a health failure, a SILENCE surge or an outcome shift."""
        del state
        now = self._clock.now()
        if decision.outcome is Outcome.SILENCE and decision.rule in _HEALTH_RULES:
            self._send(
                f"health:{decision.rule}",
                Severity.CRITICAL,
                "gate health",
                f"{_HEALTH_RULES[decision.rule]}: decisions are SILENCE ({decision.reason})",
                now,
            )
        if decision.rule in (KILL_SWITCH_RULE, DRAIN_RULE) or decision.rule.startswith("breaker:"):
            return
        with self._lock:
            shifts = self._count(request.tool, decision.outcome, now.timestamp())
            shifts += self._count(GATE, decision.outcome, now.timestamp())
        for surface, outcome, rate, base in shifts:
            if surface == GATE:
                self._send(
                    "health:silence-surge",
                    Severity.CRITICAL,
                    "SILENCE surge",
                    f"{rate:.0%} of the gate's decisions are SILENCE (baseline {base:.0%})",
                    now,
                )
            else:
                self._send(
                    f"shift:{surface}:{outcome.value}",
                    Severity.WARNING,
                    f"{outcome.value} rate shift on `{surface}`",
                    f"{rate:.0%} of decisions are {outcome.value}, baseline {base:.0%}; "
                    "check the policy activated last",
                    now,
                    {"surface": surface, "outcome": outcome.value, "policy": decision.policy},
                )

    def on_result(self, result: ActionResult, decision: Mapping[str, Any]) -> None:
        """Results do not move outcome shares."""
        del result, decision

    def _count(
        self, surface: str, outcome: Outcome, t: float
    ) -> list[tuple[str, Outcome, float, float]]:
        cfg = self.config
        start = t - (t % cfg.window_s)
        entry = self._surfaces.get(surface)
        if entry is None:
            entry = self._surfaces[surface] = _Surface(_Window(start))
        elif start > entry.window.start:
            self._close(entry)
            entry.window = _Window(start)
        window = entry.window
        window.total += 1
        window.counts[outcome] = window.counts.get(outcome, 0) + 1
        if window.total < cfg.min_samples:
            return []
        found = []
        for watched in _WATCHED if surface != GATE else (Outcome.SILENCE,):
            if watched in window.alerted:
                continue
            rate = window.counts.get(watched, 0) / window.total
            baseline = entry.baselines[watched]
            if surface == GATE:
                hit = rate >= cfg.silence_surge
            else:
                hit = baseline.samples >= cfg.warmup_windows and departs(
                    rate, baseline.mean, min_delta=cfg.min_delta, ratio=cfg.ratio
                )
            if hit:
                window.alerted.add(watched)
                found.append((surface, watched, rate, baseline.mean))
        return found

    def _close(self, entry: _Surface) -> None:
        window = entry.window
        if window.total < self.config.min_samples:
            return
        for watched in _WATCHED:
            entry.baselines[watched].update(window.counts.get(watched, 0) / window.total)

    def check_store(self, ping: Callable[[], None]) -> bool:
        """Run ``ping`` (``store.ping``); alert and return False when it raises a store error."""
        try:
            ping()
        except ClearanceError as exc:
            self._send(
                "health:store",
                Severity.CRITICAL,
                "gate health",
                f"the store is unavailable: {exc}",
                self._clock.now(),
            )
            return False
        return True

    def _send(
        self,
        key: str,
        severity: Severity,
        title: str,
        text: str,
        now: datetime,
        fields: dict[str, str] | None = None,
    ) -> None:
        self._alerts.send(
            Alert(key=key, severity=severity, title=title, text=text, at=now, fields=fields or {})
        )
