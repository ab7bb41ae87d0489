"""Drift alerts on a real data directory: a missed activation and an edited settings file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.integration.integrations.kit import POLICY, init_data_dir

from clearance.cli.commands.serve import watch
from clearance.cli.runtime import open_runtime
from clearance.control.alerts import Alert, AlertRouter, CallbackSink, Severity
from clearance.control.drift import (
    CONFIG_DRIFT,
    POLICY_DRIFT,
    DriftWatch,
    Watchdog,
    settings_digest,
)
from clearance.gate.clock import SystemClock
from clearance.policy import load_policy
from clearance.server.settings import load_settings


def _router(into: list[Alert]) -> AlertRouter:
    return AlertRouter([CallbackSink(into.append)], dedup_s=0.0)


def test_a_gate_that_missed_an_activation_alerts_after_the_grace_checks(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    init_data_dir(data_dir)
    stale = open_runtime(data_dir)  # loaded the first policy, then never reloads
    try:
        other = open_runtime(data_dir)
        try:
            newer = load_policy(
                POLICY.replace("name: integrations-test", "name: v2"), source_name="v2.yaml"
            )
            other.gate.activate(newer, by="op-alice")
        finally:
            other.close()
        alerts: list[Alert] = []
        router = _router(alerts)
        drift = DriftWatch(
            router,
            clock=SystemClock(),
            running_policy=lambda: stale.gate.bundle.digest if stale.gate.bundle else None,
            active_policy=stale.store.active_digest,
        )
        assert drift.check() == []
        assert drift.check() == []  # an activation may still be on its way
        (found,) = drift.check()
        assert found.key == POLICY_DRIFT
        assert newer.digest in found.text
        stale.gate.load_active()
        assert drift.check() == []
        router.close()
        assert [(a.key, a.severity) for a in alerts] == [(POLICY_DRIFT, Severity.CRITICAL)]
    finally:
        stale.close()


def test_an_edited_or_broken_settings_file_is_configuration_drift(tmp_path: Path) -> None:
    path = tmp_path / "clearance.toml"
    path.write_text('port = 8700\nhost = "127.0.0.1"\n', encoding="utf-8")
    running = settings_digest(load_settings(path))
    alerts: list[Alert] = []
    router = _router(alerts)
    drift = DriftWatch(
        router,
        clock=SystemClock(),
        running_policy=lambda: "sha256:a",
        active_policy=lambda: "sha256:a",
        running_config=running,
        versioned_config=lambda: settings_digest(load_settings(path)),
        config_source=f"`{path.name}`",
    )
    assert drift.check() == []
    path.write_text('port = 8701\nhost = "127.0.0.1"\n', encoding="utf-8")
    (edited,) = drift.check()
    assert edited.key == CONFIG_DRIFT
    assert "differs from `clearance.toml`" in edited.text
    path.write_text("port = [not toml\n", encoding="utf-8")
    (broken,) = drift.check()
    assert "can no longer be read" in broken.text
    router.close()
    assert all(a.key == CONFIG_DRIFT and a.severity is Severity.WARNING for a in alerts)
    assert len(alerts) == 2


def test_the_serving_watchdog_reports_a_dead_store_and_survives_a_failing_check(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    init_data_dir(data_dir)
    runtime = open_runtime(data_dir)
    alerts: list[Alert] = []
    runtime.control.alerts.sinks = (CallbackSink(alerts.append),)  # where the runtime alerts
    dog = watch(runtime, load_settings(data_dir=data_dir), None, interval_s=3600)
    try:
        dog.run_once()
        assert alerts == []
        with sqlite3.connect(data_dir / "clearance.db") as db:  # someone breaks the database
            db.execute("DROP TABLE schema_migrations")
        dog.run_once()
    finally:
        dog.stop()
        runtime.control.alerts.flush()
        runtime.close()
    assert any(a.key == "health:store" and a.severity is Severity.CRITICAL for a in alerts)

    calls: list[str] = []

    def broken() -> None:
        raise RuntimeError("bug in a check")

    Watchdog([broken, lambda: calls.append("ran")], interval_s=3600).run_once()
    assert calls == ["ran"]
