"""Repository methods for the kill switch, breaker trips, baselines and drills.

Written once in portable SQL, like ``sql.py``. ``ControlSQL`` is a mixin over any class that
provides ``transaction()`` and ``read()`` cursors (``SQLStore`` and its backends); until a backend
inherits it, ``control_store(store)`` binds the same methods to an existing ``SQLStore``.

Guarantees made by the SQL itself rather than by callers:

* every change to the stops bumps ``control_version`` in the same transaction, so a replica that
  reads the version (one indexed row) knows whether its cached stops are current;
* a stop is replaced or removed only when the caller names the stop it expects (compare-and-swap
  on ``stop_id``), so two replicas escalating the same expired drain run the halt side effects
  once, and a resume never lifts a halt made after the operator looked at the status.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from clearance.errors import ConfigError
from clearance.store.sql import BoundSQL, Cursor, SQLAccess, SQLStore


@dataclass(frozen=True, slots=True)
class StopRecord:
    """One active stop: a halt, a drain or a breaker trip on one scope.

    ``scope`` is ``all``, ``agent:<id>``, ``tool:<name>`` or ``environment:<name>``; ``deadline``
    is set for drains only (when the drain turns into a halt).
    """

    stop_id: str
    scope: str
    level: str
    rule: str
    reason: str
    operator: str
    created_at: str
    deadline: str | None = None


@dataclass(frozen=True, slots=True)
class EffectRecord:
    """What one halt hook did for one stop on one replica: a count, or the error it raised."""

    stop_id: str
    replica: str
    hook: str
    count: int | None
    error: str | None
    at: str


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    """One change of the control state, in order (``action`` is halt, drain, trip, resume ...)."""

    seq: int
    at: str
    action: str
    scope: str
    level: str
    rule: str
    stop_id: str
    operator: str
    reason: str


@dataclass(frozen=True, slots=True)
class BaselineRecord:
    """A learned exponentially weighted mean of ``metric`` for one agent and tool."""

    agent_id: str
    tool: str
    metric: str
    mean: float
    samples: int
    updated_at: str


@dataclass(frozen=True, slots=True)
class DrillRecord:
    """One kill-switch drill and the outcome of each of its steps."""

    drill_id: str
    operator: str
    started_at: str
    finished_at: str
    ok: bool
    steps: list[dict[str, Any]] = field(default_factory=list)


_STOP_COLUMNS = "stop_id, scope, level, rule, reason, operator, created_at, deadline"


def _stop(row: Sequence[Any]) -> StopRecord:
    return StopRecord(*row)


@runtime_checkable
class ControlStore(Protocol):
    """What ``clearance.control`` needs from the store."""

    def control_version(self) -> int:
        """The counter bumped by every change of the stops."""
        ...

    def stops(self) -> list[StopRecord]:
        """Every active stop."""
        ...

    def put_stop(self, stop: StopRecord, *, action: str, replaces: str | None) -> bool:
        """Insert a stop, or replace the stop ``replaces`` on the same scope; False if it moved."""
        ...

    def remove_stop(
        self, scope: str, *, stop_id: str, action: str, operator: str, reason: str, at: str
    ) -> bool:
        """Remove the stop ``stop_id`` from ``scope``; False when that stop is no longer there."""
        ...

    def add_effects(self, effects: Iterable[EffectRecord]) -> None:
        """Record what halt hooks did."""
        ...

    def effects(self, stop_id: str) -> list[EffectRecord]:
        """Every recorded effect of one stop."""
        ...

    def control_history(self, *, limit: int = 50) -> list[HistoryRecord]:
        """Recent changes, newest first."""
        ...

    def put_baselines(self, rows: Iterable[BaselineRecord]) -> None:
        """Insert or replace learned baselines."""
        ...

    def baselines(self) -> list[BaselineRecord]:
        """Every learned baseline."""
        ...

    def task_calls(self) -> dict[str, int]:
        """Permitted calls counted per task type while its tool set was being learned."""
        ...

    def add_task_calls(self, task: str, n: int, at: str) -> None:
        """Add ``n`` to the learning counter of ``task``."""
        ...

    def seen_tools(self) -> set[tuple[str, str]]:
        """Every ``(task, tool)`` pair that was ever permitted."""
        ...

    def add_seen_tool(self, task: str, tool: str, at: str) -> None:
        """Remember that ``tool`` was permitted in ``task`` (idempotent)."""
        ...

    def record_drill(self, drill: DrillRecord) -> None:
        """Store one drill."""
        ...

    def last_drill(self) -> DrillRecord | None:
        """The drill that finished last, or None."""
        ...


class ControlSQL(SQLAccess):
    """Portable SQL for ``ControlStore``; mix into a class that has ``transaction``/``read``."""

    # stops --------------------------------------------------------------------------------
    def control_version(self) -> int:
        """The counter bumped by every change of the stops (one primary-key row)."""
        with self.read() as cur:
            cur.execute("SELECT version FROM control_version WHERE id = 1")
            row = cur.fetchone()
        if row is None:
            raise ConfigError(
                "the control tables are missing", hint="run the store migrations (`open_store`)"
            )
        return int(row[0])

    def stops(self) -> list[StopRecord]:
        """Every active stop, by scope."""
        with self.read() as cur:
            cur.execute(f"SELECT {_STOP_COLUMNS} FROM control_stops ORDER BY scope")
            return [_stop(r) for r in cur.fetchall()]

    def put_stop(self, stop: StopRecord, *, action: str, replaces: str | None) -> bool:
        """Insert ``stop``, or replace the stop with id ``replaces`` on the same scope.

        With ``replaces=None`` the insert fails (returns False) when the scope already has a stop;
        with an id, the replacement happens only while that stop is still the one in place.
        """
        with self.transaction() as cur:
            if replaces is None:
                cur.execute(
                    f"INSERT INTO control_stops ({_STOP_COLUMNS}) VALUES (?,?,?,?,?,?,?,?) "
                    "ON CONFLICT (scope) DO NOTHING RETURNING stop_id",
                    _stop_params(stop),
                )
            else:
                cur.execute(
                    "UPDATE control_stops SET stop_id = ?, level = ?, rule = ?, reason = ?, "
                    "operator = ?, created_at = ?, deadline = ? WHERE scope = ? AND stop_id = ? "
                    "RETURNING stop_id",
                    (
                        stop.stop_id,
                        stop.level,
                        stop.rule,
                        stop.reason,
                        stop.operator,
                        stop.created_at,
                        stop.deadline,
                        stop.scope,
                        replaces,
                    ),
                )
            if cur.fetchone() is None:
                return False
            self._changed(cur, action, stop, stop.operator, stop.reason, stop.created_at)
        return True

    def remove_stop(
        self, scope: str, *, stop_id: str, action: str, operator: str, reason: str, at: str
    ) -> bool:
        """Remove the stop ``stop_id`` from ``scope``; False when that stop is no longer there."""
        with self.transaction() as cur:
            cur.execute(
                f"DELETE FROM control_stops WHERE scope = ? AND stop_id = ? RETURNING {_STOP_COLUMNS}",
                (scope, stop_id),
            )
            row = cur.fetchone()
            if row is None:
                return False
            self._changed(cur, action, _stop(row), operator, reason, at)
        return True

    @staticmethod
    def _changed(
        cur: Cursor, action: str, stop: StopRecord, operator: str, reason: str, at: str
    ) -> None:
        cur.execute("UPDATE control_version SET version = version + 1 WHERE id = 1")
        cur.execute(
            "INSERT INTO control_history (at, action, scope, level, rule, stop_id, operator, "
            "reason) VALUES (?,?,?,?,?,?,?,?)",
            (at, action, stop.scope, stop.level, stop.rule, stop.stop_id, operator, reason),
        )

    def add_effects(self, effects: Iterable[EffectRecord]) -> None:
        """Record what halt hooks did (a later run of the same hook replaces its row)."""
        with self.transaction() as cur:
            for e in effects:
                cur.execute(
                    "INSERT INTO control_effects (stop_id, replica, hook, count, error, at) "
                    "VALUES (?,?,?,?,?,?) ON CONFLICT (stop_id, replica, hook) DO UPDATE SET "
                    "count = excluded.count, error = excluded.error, at = excluded.at",
                    (e.stop_id, e.replica, e.hook, e.count, e.error, e.at),
                )

    def effects(self, stop_id: str) -> list[EffectRecord]:
        """Every recorded effect of one stop, by replica and hook."""
        with self.read() as cur:
            cur.execute(
                "SELECT stop_id, replica, hook, count, error, at FROM control_effects "
                "WHERE stop_id = ? ORDER BY replica, hook",
                (stop_id,),
            )
            return [EffectRecord(*r) for r in cur.fetchall()]

    def control_history(self, *, limit: int = 50) -> list[HistoryRecord]:
        """Recent changes, newest first."""
        with self.read() as cur:
            cur.execute(
                "SELECT seq, at, action, scope, level, rule, stop_id, operator, reason "
                "FROM control_history ORDER BY seq DESC LIMIT ?",
                (limit,),
            )
            return [HistoryRecord(*r) for r in cur.fetchall()]

    # baselines and learned tool sets ------------------------------------------------------
    def put_baselines(self, rows: Iterable[BaselineRecord]) -> None:
        """Insert or replace learned baselines."""
        with self.transaction() as cur:
            for b in rows:
                cur.execute(
                    "INSERT INTO control_baselines (agent_id, tool, metric, mean, samples, "
                    "updated_at) VALUES (?,?,?,?,?,?) ON CONFLICT (agent_id, tool, metric) "
                    "DO UPDATE SET mean = excluded.mean, samples = excluded.samples, "
                    "updated_at = excluded.updated_at",
                    (b.agent_id, b.tool, b.metric, b.mean, b.samples, b.updated_at),
                )

    def baselines(self) -> list[BaselineRecord]:
        """Every learned baseline."""
        with self.read() as cur:
            cur.execute(
                "SELECT agent_id, tool, metric, mean, samples, updated_at FROM control_baselines"
            )
            return [
                BaselineRecord(r[0], r[1], r[2], float(r[3]), int(r[4]), r[5])
                for r in cur.fetchall()
            ]

    def task_calls(self) -> dict[str, int]:
        """Permitted calls counted per task type while its tool set was being learned."""
        with self.read() as cur:
            cur.execute("SELECT task, calls FROM control_tasks")
            return {r[0]: int(r[1]) for r in cur.fetchall()}

    def add_task_calls(self, task: str, n: int, at: str) -> None:
        """Add ``n`` to the learning counter of ``task``."""
        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO control_tasks (task, calls, updated_at) VALUES (?,?,?) "
                "ON CONFLICT (task) DO UPDATE SET calls = control_tasks.calls + excluded.calls, "
                "updated_at = excluded.updated_at",
                (task, n, at),
            )

    def seen_tools(self) -> set[tuple[str, str]]:
        """Every ``(task, tool)`` pair that was ever permitted."""
        with self.read() as cur:
            cur.execute("SELECT task, tool FROM control_seen_tools")
            return {(r[0], r[1]) for r in cur.fetchall()}

    def add_seen_tool(self, task: str, tool: str, at: str) -> None:
        """Remember that ``tool`` was permitted in ``task`` (idempotent)."""
        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO control_seen_tools (task, tool, first_at) VALUES (?,?,?) "
                "ON CONFLICT (task, tool) DO NOTHING",
                (task, tool, at),
            )

    # drills -------------------------------------------------------------------------------
    def record_drill(self, drill: DrillRecord) -> None:
        """Store one drill."""
        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO control_drills (drill_id, operator, started_at, finished_at, ok, "
                "steps) VALUES (?,?,?,?,?,?)",
                (
                    drill.drill_id,
                    drill.operator,
                    drill.started_at,
                    drill.finished_at,
                    1 if drill.ok else 0,
                    json.dumps(drill.steps, separators=(",", ":"), sort_keys=True),
                ),
            )

    def last_drill(self) -> DrillRecord | None:
        """The drill that finished last, or None."""
        with self.read() as cur:
            cur.execute(
                "SELECT drill_id, operator, started_at, finished_at, ok, steps FROM control_drills "
                "ORDER BY finished_at DESC LIMIT 1"
            )
            row = cur.fetchone()
        if row is None:
            return None
        return DrillRecord(row[0], row[1], row[2], row[3], bool(row[4]), json.loads(row[5]))


def _stop_params(stop: StopRecord) -> tuple[Any, ...]:
    return (
        stop.stop_id,
        stop.scope,
        stop.level,
        stop.rule,
        stop.reason,
        stop.operator,
        stop.created_at,
        stop.deadline,
    )


class _BoundControlSQL(BoundSQL, ControlSQL):
    """``ControlSQL`` over an ``SQLStore`` that does not inherit the mixin itself."""


def control_store(store: object) -> ControlStore:
    """The control repository of ``store``: the store itself when it mixes in ``ControlSQL``.

    Raises ``ConfigError`` for a store that is not SQL-backed: kill-switch state must be shared by
    every gate replica and survive restarts, which an in-memory stand-in would silently break.
    """
    if isinstance(store, ControlSQL):
        return store
    if isinstance(store, SQLStore):
        return _BoundControlSQL(store)
    raise ConfigError(
        f"the store `{type(store).__name__}` cannot hold kill-switch state",
        hint="use the SQLite or PostgreSQL store (`open_store`)",
    )
