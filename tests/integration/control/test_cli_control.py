"""The control commands in-process against a data directory made by ``clearance init``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clearance.cli.commands.control import app
from clearance.cli.main import main

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    code = 0
    try:
        main(["init"])
    except SystemExit as exc:
        code = int(exc.code or 0)
    assert code == 0
    return tmp_path / ".clearance"


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_kill_status_resume_round_trip(data_dir: Path) -> None:
    code, out = run("kill", "agent:bot", "--reason", "runaway loop", "--operator", "alice")
    assert code == 0, out
    assert "halt agent:bot (kill-switch)" in out
    assert "approvals.cancelled=0" in out
    assert "tokens.revoked=0" in out
    code, out = run("status", "--json")
    assert code == 0, out
    (stop,) = json.loads(out)["stops"]
    assert (stop["scope"], stop["operator"], stop["reason"]) == (
        "agent:bot",
        "alice",
        "runaway loop",
    )
    assert {e["hook"]: e["count"] for e in stop["effects"]} == {
        "approvals.cancelled": 0,
        "tokens.revoked": 0,
        "credentials.revoked": 0,
    }
    code, out = run("resume", "agent:bot", "--reason", "fixed", "--operator", "alice")
    assert code == 0, out
    assert "resumed agent:bot" in out
    code, out = run("status")
    assert "nothing is stopped" in out


def test_resume_needs_an_operator_and_a_reason(data_dir: Path) -> None:
    run("kill", "all", "--reason", "incident", "--operator", "alice")
    code, _ = run("resume", "all", "--reason", "ok")
    assert code != 0
    code, _ = run("resume", "all", "--operator", "alice")
    assert code != 0
    code, out = run("status")
    assert "all: halt" in out


def test_bad_scope_is_refused(data_dir: Path) -> None:
    code, out = run("kill", "host:db1", "--reason", "x", "--operator", "alice")
    assert code != 0
    assert isinstance(out, str)


def test_drill_and_doctor(data_dir: Path) -> None:
    code, out = run("doctor")
    assert code == 1
    assert "WARN drill: no kill-switch drill was ever recorded" in out
    assert "WARN alerts: no alert sink is configured" in out
    code, out = run("alerts", "--log")
    assert code == 0
    assert "log: on" in out
    code, out = run("drill", "--operator", "alice")
    assert "ok   call denied while halted: DENY kill-switch" in out
    assert "ok   token revoked: revoked" in out
    assert code == 0, out
    code, out = run("doctor")
    assert "ok   drill: last drill passed at" in out
    assert "ok   alerts" in out
    code, out = run("status")
    assert "nothing is stopped" in out  # the drill always resumes
