"""The command line, in-process and as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from clearance.cli.main import main

TRANSFER = {
    "session": {"agent_id": "a1", "task": "transfer", "environment": "staging"},
    "request": {
        "tool": "transfer_funds",
        "args": {"from_account": "ACC-100001", "to_account": "ACC-100002", "amount": 25.5},
    },
}


def _run(args: list[str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clearance", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_demo_runs_the_whole_story(tmp_path: Path) -> None:
    result = _run(["demo"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every decision matched the policy and the evidence verified" in result.stdout
    assert "rule scope" in result.stdout
    assert "invalid-token" in result.stdout
    # the live gate: the dashboard address, the breaker holding the unexpected call, its alert
    assert "gate and dashboard: http://127.0.0.1:" in result.stdout
    assert "rule breaker:unusual-sequence" in result.stdout
    assert "ALERT [WARNING] breaker on agent:finance-agent" in result.stdout
    assert "breakers tripped: 0" in result.stdout  # the normal morning trips nothing


def test_init_decide_and_replay(tmp_path: Path) -> None:
    assert _run(["init"], tmp_path).returncode == 0
    assert (tmp_path / "policy.yaml").exists()
    mode = (tmp_path / ".clearance" / "keys" / "audit.key").stat().st_mode & 0o777
    assert mode == 0o600
    decided = _run(["decide", "-"], tmp_path, stdin=json.dumps(TRANSFER))
    assert decided.returncode == 0, decided.stderr
    decision = json.loads(decided.stdout)
    assert decision["outcome"] == "PERMIT"
    assert decision["receipt"]["payloadType"] == "application/vnd.clearance.receipt.v1+json"
    replayed = _run(["replay", decision["decision_id"]], tmp_path)
    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(replayed.stdout)["identical"] is True


def test_decide_outside_the_task_exits_non_zero(tmp_path: Path) -> None:
    assert _run(["init"], tmp_path).returncode == 0
    body = {**TRANSFER, "session": {**TRANSFER["session"], "task": "balance_check"}}
    decided = _run(["decide", "-"], tmp_path, stdin=json.dumps(body))
    assert decided.returncode == 1
    assert json.loads(decided.stdout)["rule"] == "scope"


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ("{not json", "is not JSON"),
        ('{"request": {}}', "must be an object with `session` and `request`"),
    ],
)
def test_bad_input_is_one_clear_line(
    tmp_path: Path,
    stdin: str,
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as init_exit:
        main(["init"])
    assert init_exit.value.code == 0
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(stdin))
    with pytest.raises(SystemExit) as exit_info:
        main(["decide", "-"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert message in err[0]


def test_missing_data_dir_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["replay", "01ABC", "--data-dir", str(tmp_path / "nowhere")])
    assert exit_info.value.code == 2
    assert "clearance init" in capsys.readouterr().err


def test_kill_from_the_cli_stops_decisions_of_every_entry_point(tmp_path: Path) -> None:
    assert _run(["init"], tmp_path).returncode == 0
    killed = _run(["kill", "agent:a1", "--reason", "drill", "--operator", "op-admin"], tmp_path)
    assert killed.returncode == 0, killed.stderr
    decided = _run(["decide", "-"], tmp_path, stdin=json.dumps(TRANSFER))
    assert decided.returncode == 1
    assert json.loads(decided.stdout)["rule"] == "kill-switch"
