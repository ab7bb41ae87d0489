"""Operating a deployment over time: ``incident``, ``review`` and ``promote``.

::

    clearance incident export --session SID --out incident.json
    clearance incident verify incident.json --key "$(cat .clearance/keys/audit.pub)"
    clearance review --days 90 --format md --out review.md
    clearance review --sign-off --operator op-carol
    clearance promote staging.yaml production.yaml --cases cases.yaml --author op-alice \\
        --approver op-bob --signing-key policy-signing.pem --out production.bundle

``incident verify`` is the standalone verifier's ``bundle`` command (``python -m
clearance.audit.verify bundle FILE --key VKEY``) with its exit codes: 0 verified, 1 evidence of
tampering, 2 unusable input, 3 not enough evidence yet.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from clearance.cli.runtime import DEFAULT_DATA_DIR, store_url_for
from clearance.errors import ConfigError

DataDir = Annotated[Path, typer.Option("--data-dir", "-d", help="The gate's data directory.")]
_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)

incident_app = typer.Typer(no_args_is_help=True, add_completion=False)


@incident_app.command("export")
def incident_export(
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle file to write (JSON).")],
    session: Annotated[str | None, typer.Option("--session", help="Session id.")] = None,
    agent: Annotated[str | None, typer.Option("--agent", help="Agent id.")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="ISO time, e.g. 2026-11-01T00:00:00Z.")
    ] = None,
    timeline: Annotated[
        Path | None, typer.Option("--timeline", help="Also write the Markdown timeline here.")
    ] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Write a self-contained evidence bundle: entries, proofs, receipts, policies, timeline."""
    from clearance.gate.clock import SystemClock
    from clearance.gate.forensics import IncidentQuery, export_incident
    from clearance.store import open_store
    from clearance.store.audit_sqlite import SQLiteAuditStorage

    query = IncidentQuery(session=session, agent=agent, since=since)
    audit_db = data_dir / "audit.db"
    if not audit_db.is_file():
        raise ConfigError(f"no audit shard at `{audit_db}`", hint="pass the gate's --data-dir")
    storage = SQLiteAuditStorage(audit_db, readonly=True)
    store = open_store(store_url_for(data_dir, None))
    try:
        bundle = export_incident(storage, store, query, exported_at=SystemClock().now().isoformat())
    finally:
        store.close()
        storage.close()
    out.write_text(json.dumps(bundle, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    if timeline is not None:
        timeline.write_text(bundle["timeline"], encoding="utf-8")
    proved = sum(1 for e in bundle["entries"] if e["proof"] is not None)
    _out.print(
        f"wrote {out}: {len(bundle['entries'])} entries ({proved} with inclusion proofs), "
        f"{len(bundle['receipts'])} receipts, {len(bundle['policies'])} policy bundles"
    )


@incident_app.command("verify")
def incident_verify(
    bundle: Annotated[Path, typer.Argument(help="Incident bundle file.")],
    key: Annotated[list[str], typer.Option("--key", help="Trusted vkey (repeatable).")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Check a bundle offline with only the public key (the standalone verifier's `bundle`)."""
    from clearance.audit.verify.verify import main

    args = [arg for k in key for arg in ("--key", k)]
    raise typer.Exit(main(["bundle", str(bundle), *args, *(["--json"] if as_json else [])]))


def review(
    days: Annotated[int, typer.Option("--days", min=1, help="Period to review.")] = 90,
    fmt: Annotated[str, typer.Option("--format", help="md or json.")] = "md",
    rare: Annotated[
        int, typer.Option("--rare", min=1, help="Grants asked for fewer times are reported.")
    ] = 3,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the report here.")] = None,
    sign: Annotated[
        bool, typer.Option("--sign-off", help="Record the operator's sign-off in the audit log.")
    ] = False,
    operator: Annotated[str | None, typer.Option("--operator", help="Who signs off.")] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Access review: unused grants, rules that never decided, break-glass uses, shadow tools."""

    from clearance.cli.runtime import open_runtime
    from clearance.gate.review import review_gate, sign_off

    if fmt not in ("md", "json"):
        raise ConfigError(f"unknown report format `{fmt}`", hint="use --format md or json")
    if sign and not operator:
        raise ConfigError("--sign-off needs the reviewer", hint="pass --operator ID")
    runtime = open_runtime(data_dir)
    try:
        report = review_gate(runtime.gate, days=days, rare=rare)
        if sign and operator:
            sign_off(runtime.gate.audit, report, operator=operator)
    finally:
        runtime.close()
    text = json.dumps(report.to_json(), indent=1) + "\n" if fmt == "json" else report.to_markdown()
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
    if sign:
        _err.print(f"signed off report {report.digest} as {operator}")


def promote(
    staging: Annotated[Path, typer.Argument(help="The policy tested in staging.")],
    production: Annotated[Path, typer.Argument(help="The policy to run in production.")],
    cases: Annotated[Path, typer.Option("--cases", help="Policy tests that must pass.")],
    author: Annotated[str, typer.Option("--author", help="Who wrote the change.")],
    approver: Annotated[str, typer.Option("--approver", help="Who approves it (not the author).")],
    signing_key: Annotated[
        Path, typer.Option("--signing-key", help="Ed25519 private key (PEM) signing the bundle.")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Signed bundle to write (+ `.sig` beside it).")
    ],
    allow_widening: Annotated[
        list[str] | None,
        typer.Option("--allow-widening", help="A reviewed widening, by name (repeatable)."),
    ] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Promote a policy to production: tests green, widenings named, a second person approves."""
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from clearance.cli.commands.redteam import attack
    from clearance.cli.runtime import open_runtime
    from clearance.gate.promotion import check_promotion
    from clearance.policy import load_policy
    from clearance.policy.cases import load_cases

    key = load_pem_private_key(signing_key.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(
            f"`{signing_key}` is not an Ed25519 private key",
            hint="policy bundles are Ed25519-signed",
        )
    bundle = load_policy(production)
    plan = check_promotion(
        load_policy(staging),
        bundle,
        load_cases(cases),
        author=author,
        approver=approver,
        attack=lambda b: attack(b, show_progress=False),
        allowed_widenings=allow_widening or (),
    )
    signed = bundle.sign(key)
    assert signed.signature is not None  # INVARIANT: sign() always sets it
    runtime = open_runtime(data_dir, require_policy=False)
    try:
        audit = runtime.gate.audit
        if audit is None:
            raise ConfigError("the data directory has no audit log", hint="run `clearance init`")
        audit.record_event(
            "policy.promoted",
            {"policy": plan.production, "author": author, "approver": approver},
            {
                "staging": plan.staging,
                "cases_passed": plan.cases_passed,
                "attacks_run": plan.attacks_run,
                "changes": [c.name for c in plan.changes],
                "widenings": [w.name for w in plan.widenings],
            },
        )
    finally:
        runtime.close()
    out.write_bytes(signed.to_bytes())
    out.with_name(out.name + ".sig").write_text(
        base64.b64encode(signed.signature).decode() + "\n", encoding="utf-8"
    )
    _out.print(
        f"promoted {plan.production}: {plan.cases_passed} tests and "
        f"{plan.attacks_run} red-team attacks passed, "
        f"{len(plan.changes)} case(s) change, widenings named: "
        f"{', '.join(w.name for w in plan.widenings) or 'none'}; signed bundle in {out}"
    )


def register(app: typer.Typer) -> None:
    """Add ``incident``, ``review`` (and the other operations commands) to ``app``."""
    app.add_typer(incident_app, name="incident", help="Export and verify incident bundles.")
    app.command("review")(review)
    app.command("promote")(promote)
