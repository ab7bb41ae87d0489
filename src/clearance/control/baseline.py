"""Learned baselines: what normal looks like for each agent and tool, so breakers can see abnormal.

Two kinds of baseline, each an exponentially weighted moving average (EWMA):

* **call rate**: calls per window (60 s by default) while the agent is *active*. Only windows with
  at least one call update it: agents work in bursts and idle for hours, and averaging the idle
  hours in would make every burst look like a spike. The current rate is a sliding-window estimate
  (the current window plus the overlapping share of the previous one), so a spike that straddles
  a window boundary is still counted whole.
* **output size**: bytes per reported result.

A baseline gives a limit only after a **warm-up** (``warmup`` observations, and for rates at least
one completed window), and the limit is never below a **floor**: a quiet agent whose baseline is one
call a minute must not trip on its third call. This module is pure bookkeeping: no clock (times are
passed in as seconds), no store (``records``/``load`` convert to and from stored rows).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from clearance.store.control_sql import BaselineRecord

#: Weight of the newest observation in every EWMA.
DEFAULT_ALPHA = 0.2
RATE = "rate"
SIZE = "size"
#: The ``tool`` of the per-agent baseline that sums every tool.
ALL_TOOLS = "*"


@dataclass(slots=True)
class Ewma:
    """An exponentially weighted mean and how many observations fed it."""

    mean: float = 0.0
    samples: int = 0

    def update(self, value: float, alpha: float = DEFAULT_ALPHA) -> None:
        """Fold one observation in (the first one sets the mean)."""
        self.mean = value if self.samples == 0 else alpha * value + (1 - alpha) * self.mean
        self.samples += 1

    def limit(self, *, factor: float, floor: float, warmup: int) -> float | None:
        """``max(factor * mean, floor)`` once warmed up, else None (no limit yet)."""
        if self.samples < warmup:
            return None
        return max(factor * self.mean, floor)


@dataclass(slots=True)
class RateBaseline:
    """Call rate of one agent and tool: the EWMA of active windows plus the live window counts.

    ``calls`` counts every call ever observed (the warm-up measure); ``ewma.samples`` counts the
    active windows that fed the mean.
    """

    window_s: float
    ewma: Ewma
    calls: int = 0
    start: float | None = None
    current: int = 0
    previous: int = 0

    def observe(self, t: float, alpha: float = DEFAULT_ALPHA) -> float:
        """Count one call at ``t`` (epoch seconds); return the calls in the last ``window_s``."""
        begin = t - (t % self.window_s)
        if self.start is None:
            self.start = begin
        elif begin > self.start:
            if self.current:
                self.ewma.update(self.current, alpha)
            adjacent = begin - self.start <= self.window_s
            self.previous = self.current if adjacent else 0
            self.current = 0
            self.start = begin
        self.current += 1
        self.calls += 1
        overlap = 1.0 - (t - self.start) / self.window_s
        return self.current + self.previous * max(overlap, 0.0)

    def limit(self, *, factor: float, floor: float, warmup: int) -> float | None:
        """The most calls per window that are still normal, or None during warm-up."""
        if self.calls < warmup or self.ewma.samples == 0:
            return None
        return max(factor * self.ewma.mean, floor)

    def forget_window(self) -> None:
        """Drop the live counts (after a resume, so the spike that tripped does not trip again)."""
        self.current = 0
        self.previous = 0


class BaselineBook:
    """Every baseline of this node, keyed by ``(agent, tool)``, with the ones changed since saving."""

    def __init__(self, *, window_s: float = 60.0, alpha: float = DEFAULT_ALPHA) -> None:
        self.window_s = window_s
        self.alpha = alpha
        self.rates: dict[tuple[str, str], RateBaseline] = {}
        self.sizes: dict[tuple[str, str], Ewma] = {}
        self._dirty: set[tuple[str, str, str]] = set()

    def rate(self, agent_id: str, tool: str) -> RateBaseline:
        """The rate baseline of ``(agent_id, tool)``, created empty on first use."""
        key = (agent_id, tool)
        found = self.rates.get(key)
        if found is None:
            found = self.rates[key] = RateBaseline(self.window_s, Ewma())
        return found

    def observe_call(self, agent_id: str, tool: str, t: float) -> tuple[float, RateBaseline]:
        """Count one call; return the sliding-window count and the baseline of ``(agent_id, tool)``."""
        baseline = self.rate(agent_id, tool)
        windows = baseline.ewma.samples
        count = baseline.observe(t, self.alpha)
        if baseline.ewma.samples != windows or baseline.calls == 1:
            self._dirty.add((agent_id, tool, RATE))
        return count, baseline

    def size(self, agent_id: str, tool: str) -> Ewma:
        """The output-size baseline of ``(agent_id, tool)``, created empty on first use."""
        key = (agent_id, tool)
        found = self.sizes.get(key)
        if found is None:
            found = self.sizes[key] = Ewma()
        return found

    def observe_size(self, agent_id: str, tool: str, size: int) -> None:
        """Fold one normal output size in."""
        self.size(agent_id, tool).update(float(size), self.alpha)
        self._dirty.add((agent_id, tool, SIZE))

    def forget_agent(self, agent_id: str) -> None:
        """Clear the live windows of one agent (its learned means stay)."""
        for (agent, _), baseline in self.rates.items():
            if agent == agent_id:
                baseline.forget_window()

    # persistence --------------------------------------------------------------------------
    def load(self, records: Iterable[BaselineRecord]) -> None:
        """Restore learned means (rates restore as warm: their calls count is the stored samples)."""
        for r in records:
            if r.metric == RATE:
                b = self.rate(r.agent_id, r.tool)
                b.ewma = Ewma(r.mean, max(r.samples, 1) if r.mean > 0 else 0)
                b.calls = r.samples
            elif r.metric == SIZE:
                self.sizes[(r.agent_id, r.tool)] = Ewma(r.mean, r.samples)

    def dirty_records(self, at: str) -> list[BaselineRecord]:
        """The baselines changed since the last call, as rows to save (and forget they changed)."""
        rows = []
        for agent, tool, metric in sorted(self._dirty):
            if metric == RATE:
                b = self.rates[(agent, tool)]
                rows.append(BaselineRecord(agent, tool, RATE, b.ewma.mean, b.calls, at))
            else:
                e = self.sizes[(agent, tool)]
                rows.append(BaselineRecord(agent, tool, SIZE, e.mean, e.samples, at))
        self._dirty.clear()
        return rows


class SequenceBook:
    """Which tools each task type has used, learned from permitted calls.

    A task type is *learning* until ``warmup`` permitted calls were seen in it; until then every
    tool it uses is simply learned. Afterwards a tool never permitted before in that task type is
    unusual. ``seen`` and ``counts`` are restored from the store at start-up.
    """

    def __init__(self, *, warmup: int) -> None:
        self.warmup = warmup
        self.seen: set[tuple[str, str]] = set()
        self.counts: dict[str, int] = {}

    def learned(self, task: str) -> bool:
        """True once ``task`` has finished its warm-up."""
        return self.counts.get(task, 0) >= self.warmup

    def unusual(self, task: str, tool: str) -> bool:
        """True when ``tool`` was never permitted in a task type that finished its warm-up."""
        return (task, tool) not in self.seen and self.learned(task)

    def observe(self, task: str, tool: str) -> tuple[bool, bool]:
        """Record one permitted call; return ``(new tool for the task, still counting warm-up)``."""
        new = (task, tool) not in self.seen
        if new:
            self.seen.add((task, tool))
        counting = not self.learned(task)
        if counting:
            self.counts[task] = self.counts.get(task, 0) + 1
        return new, counting
