"""Top-level commands: ``init``, ``decide``, ``replay`` and ``demo``."""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from clearance.cli.runtime import DEFAULT_DATA_DIR, create_keys, open_runtime, store_url_for
from clearance.errors import RequestError
from clearance.gate.config import GateConfig
from clearance.model.request import Request
from clearance.policy import load_policy
from clearance.store import open_store

DataDir = Annotated[
    Path, typer.Option("--data-dir", "-d", help="The gate's data directory.", show_default=True)
]
StoreURL = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Store URL (sqlite:///... or postgresql://...); default: the data dir's SQLite file.",
    ),
]

_out = Console(highlight=False, soft_wrap=True)


def example_policy_text() -> str:
    """The FinanceApp example policy shipped with clearance."""
    return resources.files("clearance.cli").joinpath("financeapp.yaml").read_text("utf-8")


def init(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    policy: Annotated[
        Path | None,
        typer.Option(
            help="Policy to activate; default: scaffold policy.yaml from the FinanceApp example."
        ),
    ] = None,
    store: StoreURL = None,
) -> None:
    """Create a data directory: store, keys and an active policy."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if policy is None:
        policy = Path("policy.yaml")
        if not policy.exists():
            policy.write_text(example_policy_text(), encoding="utf-8")
            _out.print(f"wrote the example policy to {policy}")
    bundle = load_policy(policy)
    create_keys(data_dir, GateConfig().deployment)
    open_store(store_url_for(data_dir, store)).close()
    runtime = open_runtime(data_dir, store_url=store, require_policy=False)
    try:
        runtime.gate.activate(bundle, by="clearance init")
    finally:
        runtime.close()
    _out.print(f"initialised {data_dir}; active policy {bundle.digest}")
    _out.print(f"audit verifier key: {runtime.audit_key.vkey}")


def _read_json(source: str) -> Any:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text("utf-8")
    except OSError as exc:
        raise RequestError(f"cannot read `{source}`: {exc.strerror}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestError(
            f"`{source}` is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc


def decide(
    source: Annotated[
        str, typer.Argument(help="JSON file with `session` and `request`, or - for stdin.")
    ] = "-",
    data_dir: DataDir = DEFAULT_DATA_DIR,
    store: StoreURL = None,
) -> None:
    """Decide one request and print the decision as JSON.

    The input is ``{"session": {agent_id, task, environment, principal?, instruction?},
    "request": {tool, action?, args?, target?, reasoning?}}``: the command line acts as the trusted
    opener of a fresh session, then submits the request in it as that agent.
    """
    body = _read_json(source)
    if not isinstance(body, dict) or not isinstance(body.get("session"), dict):
        raise RequestError(
            "the input must be an object with `session` and `request` objects",
            hint='e.g. {"session": {"agent_id": "a1", "task": "transfer", "environment": "staging"}, "request": {"tool": "read_account", "args": {"account_id": "acc-1"}}}',
        )
    runtime = open_runtime(data_dir, store_url=store)
    try:
        session_in = body["session"]
        try:
            session = runtime.gate.open_session(**session_in)
            request = Request.model_validate(
                {
                    **body.get("request", {}),
                    "agent_id": session.agent_id,
                    "session_id": session.session_id,
                }
            )
        except (ValidationError, TypeError, ValueError) as exc:
            raise RequestError(f"invalid input: {exc}".replace("\n", " ")) from exc
        decision = runtime.gate.decide(request)
        _out.print_json(decision.model_dump_json())
    finally:
        runtime.close()
    if not decision.permitted:
        raise typer.Exit(1)


def replay(
    decision_id: Annotated[str, typer.Argument(help="The decision id to replay.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    store: StoreURL = None,
) -> None:
    """Re-evaluate an archived decision against its archived policy bundle; exit 1 if it differs."""
    runtime = open_runtime(data_dir, store_url=store)
    try:
        result = runtime.gate.replay(decision_id)
    finally:
        runtime.close()
    _out.print_json(
        json.dumps(
            {
                "identical": result.identical,
                "original": result.original,
                "replayed": result.replayed,
            }
        )
    )
    if not result.identical:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the top-level commands to ``app``."""
    app.command()(init)
    app.command()(decide)
    app.command()(replay)
