"""The replica id: from the flag, the environment or the settings file to the audit shard's name."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from clearance.cli.main import app
from clearance.cli.runtime import gate_config, open_runtime
from clearance.errors import ConfigError
from clearance.server.settings import load_settings


def test_the_flag_beats_the_environment_which_beats_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "clearance.toml"
    file.write_text('replica_id = "gate-file"\n')
    assert load_settings(file).replica_id == "gate-file"
    monkeypatch.setenv("CLEARANCE_REPLICA_ID", "gate-env")
    assert load_settings(file).replica_id == "gate-env"
    assert load_settings(file, replica_id="gate-flag").replica_id == "gate-flag"
    monkeypatch.delenv("CLEARANCE_REPLICA_ID")
    assert load_settings().replica_id == "node"  # one gate: AUDIT.md's embedded default


@pytest.mark.parametrize("bad", ["Gate-A", "gate a", "gate/a", "gate+a", ""])
def test_a_replica_id_that_cannot_name_a_shard_is_refused_with_the_key(bad: str) -> None:
    with pytest.raises(ConfigError, match="replica_id"):
        load_settings(replica_id=bad)
    with pytest.raises(ConfigError, match="lowercase letters"):
        gate_config("clearance.local/audit", bad or "-/")


def test_serve_offers_the_flag() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "--replica-id" in result.output


def test_the_replica_id_names_the_audit_shard_of_the_runtime(tmp_path: Path) -> None:
    data_dir = tmp_path / "gate"
    CliRunner().invoke(app, ["init", "--data-dir", str(data_dir)], catch_exceptions=False)
    runtime = open_runtime(data_dir, replica_id="gate-b")
    try:
        assert runtime.audit_log.origin.endswith("/gate-b/" + runtime.audit_log.origin[-4:])
        assert runtime.gate.config.replica_id == "gate-b"
        assert runtime.control.killswitch.replica == "gate-b"
    finally:
        runtime.close()


def test_serve_settings_reach_the_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clearance.cli.commands.serve import open_service

    data_dir = tmp_path / "gate"
    CliRunner().invoke(app, ["init", "--data-dir", str(data_dir)], catch_exceptions=False)
    monkeypatch.setenv("CLEARANCE_REPLICA_ID", "gate-c")
    runtime, _ = open_service(load_settings(data_dir=data_dir))
    try:
        assert "/gate-c/" in runtime.audit_log.origin
    finally:
        runtime.close()


def test_operator_commands_take_their_id_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "gate"
    CliRunner().invoke(app, ["init", "--data-dir", str(data_dir)], catch_exceptions=False)
    monkeypatch.setenv("CLEARANCE_REPLICA_ID", "ops")
    runtime = open_runtime(data_dir, require_policy=False)  # what `clearance control kill` opens
    try:
        assert "/ops/" in runtime.audit_log.origin
    finally:
        runtime.close()
