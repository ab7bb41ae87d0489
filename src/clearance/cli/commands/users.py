"""``clearance users``: agents and their keys, orchestrator keys, operators.

Keys are printed once, when they are made, and stored only as SHA-256 digests; a lost key is
revoked and replaced, never recovered. Operator passwords are read from standard input (one line)
so they never appear in the process list or shell history.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from clearance.cli.runtime import DEFAULT_DATA_DIR, store_url_for
from clearance.errors import ConfigError
from clearance.gate.clock import SystemClock
from clearance.model.session import Environment
from clearance.server.identity import IdentityService, Role
from clearance.store import open_store
from clearance.store.identity_sql import identity_store

app = typer.Typer(no_args_is_help=True)

DataDir = Annotated[Path, typer.Option(help="Data directory made by `clearance init`.")]
StoreURL = Annotated[
    str | None, typer.Option("--store", help="Store URL (default: the data dir's).")
]


@contextmanager
def _identity(data_dir: Path, store: str | None) -> Iterator[IdentityService]:
    opened = open_store(store_url_for(data_dir, store))
    try:
        yield IdentityService(identity_store(opened), SystemClock())
    finally:
        opened.close()


@app.command("add-agent")
def add_agent(
    agent_id: Annotated[str, typer.Argument(help="The agent's id (decisions name it).")],
    environment: Annotated[Environment, typer.Option(help="Where its actions land.")],
    description: Annotated[str, typer.Option(help="What the agent does.")] = "",
    created_by: Annotated[str, typer.Option(help="Who registers it (for the record).")] = "cli",
    data_dir: DataDir = DEFAULT_DATA_DIR,
    store: StoreURL = None,
) -> None:
    """Register an agent in one environment."""
    with _identity(data_dir, store) as identity:
        identity.register_agent(
            agent_id, environment=environment, description=description, created_by=created_by
        )
    print(f"registered agent {agent_id} ({environment.value})")


@app.command("agent-key")
def agent_key(
    agent_id: Annotated[str, typer.Argument(help="A registered agent.")],
    label: Annotated[str, typer.Option(help="A note to tell keys apart.")] = "",
    created_by: Annotated[str, typer.Option(help="Who mints it (for the record).")] = "cli",
    data_dir: DataDir = DEFAULT_DATA_DIR,
    store: StoreURL = None,
) -> None:
    """Mint an API key for an agent; the key is printed once."""
    with _identity(data_dir, store) as identity:
        minted = identity.create_agent_key(agent_id, created_by=created_by, label=label)
    print(json.dumps({"key_id": minted.key_id, "key": minted.secret, "agent_id": agent_id}))


@app.command("orchestrator-key")
def orchestrator_key(
    label: Annotated[str, typer.Argument(help="Name of the orchestrator.")],
    environment: Annotated[Environment, typer.Option(help="Where it may open sessions.")],
    created_by: Annotated[str, typer.Option(help="Who mints it (for the record).")] = "cli",
    data_dir: DataDir = DEFAULT_DATA_DIR,
    store: StoreURL = None,
) -> None:
    """Mint a key that may open and close sessions in one environment; printed once."""
    with _identity(data_dir, store) as identity:
        minted = identity.create_orchestrator_key(
            label, environment=environment, created_by=created_by
        )
    print(json.dumps({"key_id": minted.key_id, "key": minted.secret, "orchestrator": label}))


@app.command("add-operator")
def add_operator(
    username: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[list[Role], typer.Option(help="Repeat for several roles.")],
    totp: Annotated[bool, typer.Option(help="Enrol a TOTP second factor.")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    store: StoreURL = None,
) -> None:
    """Create a dashboard operator; the password is read from standard input."""
    password = sys.stdin.readline().rstrip("\n")
    if not password:
        raise ConfigError(
            "no password on standard input",
            hint="e.g. `pass show ops/ana | clearance users add-operator ana --role approver`",
        )
    with _identity(data_dir, store) as identity:
        secret = identity.create_operator(username, password, set(role), with_totp=totp)
    print(f"created operator {username} ({', '.join(sorted(r.value for r in role))})")
    if secret is not None:
        print(f"TOTP secret (enrol it now, it is not shown again): {secret}")


@app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (`key_...`), not the key.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    store: StoreURL = None,
) -> None:
    """Revoke an agent or orchestrator key at once."""
    with _identity(data_dir, store) as identity:
        identity.revoke_key(key_id)
    print(f"revoked {key_id}")


@app.command("list")
def list_all(data_dir: DataDir = DEFAULT_DATA_DIR, store: StoreURL = None) -> None:
    """Agents, keys (metadata only) and operators, as JSON."""
    with _identity(data_dir, store) as identity:
        records = identity.records
        listing = {
            "agents": [
                {"agent_id": a.agent_id, "environment": a.environment, "disabled": a.disabled_at}
                for a in records.list_agents()
            ],
            "keys": [
                {
                    "key_id": k.key_id,
                    "kind": k.kind.value,
                    "agent_id": k.agent_id,
                    "environment": k.environment,
                    "label": k.label,
                    "revoked": k.revoked_at,
                }
                for k in records.list_keys()
            ],
            "operators": [
                {"username": o.username, "roles": list(o.roles), "totp": o.totp_secret is not None}
                for o in records.list_operators()
            ],
        }
    print(json.dumps(listing, indent=2))
