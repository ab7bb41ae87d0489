"""``clearance users``: keys printed once work against the service's identity check."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from clearance.cli.commands.users import app
from clearance.errors import ClearanceError
from clearance.gate.clock import SystemClock
from clearance.server.identity import AgentPrincipal, AuthenticationError, IdentityService
from clearance.store import open_store
from clearance.store.identity_sql import identity_store


def run(data_dir: Path, *args: str, stdin: str | None = None) -> str:
    result = CliRunner().invoke(app, [*args, "--data-dir", str(data_dir)], input=stdin)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_agent_key_made_on_the_command_line_authenticates_until_revoked(tmp_path: Path) -> None:
    run(tmp_path, "add-agent", "billing-bot", "--environment", "staging")
    minted = json.loads(run(tmp_path, "agent-key", "billing-bot", "--label", "ci"))
    store = open_store(f"sqlite:///{tmp_path / 'clearance.db'}")
    identity = IdentityService(identity_store(store), SystemClock())
    principal = identity.authenticate_key(minted["key"])
    assert principal == AgentPrincipal("billing-bot", principal.environment, minted["key_id"])
    assert minted["key"] not in (tmp_path / "clearance.db").read_bytes().decode("latin-1")

    run(tmp_path, "revoke", minted["key_id"])
    try:
        identity.authenticate_key(minted["key"])
    except AuthenticationError:
        pass
    else:
        raise AssertionError("a revoked key still authenticates")
    listing = json.loads(run(tmp_path, "list"))
    assert listing["keys"][0]["revoked"] is not None
    store.close()


def test_operator_password_comes_from_stdin(tmp_path: Path) -> None:
    out = run(tmp_path, "add-operator", "ana", "--role", "approver", stdin="a long passphrase\n")
    assert "created operator ana" in out
    store = open_store(f"sqlite:///{tmp_path / 'clearance.db'}")
    identity = IdentityService(identity_store(store), SystemClock())
    assert identity.login("ana", "a long passphrase", None).operator.username == "ana"
    store.close()


def test_short_password_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["add-operator", "ana", "--role", "viewer", "--data-dir", str(tmp_path)],
        input="short\n",
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, ClearanceError)
