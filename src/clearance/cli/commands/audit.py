"""``clearance audit``: verify, export and tail the audit log; prune expired payloads.

::

    clearance audit verify --key "$VKEY" log .clearance --state /var/lib/clearance-verify.json
    clearance audit verify --key "$VKEY" --db postgresql://auditor@db/clearance   # every shard
    clearance audit export --data-dir .clearance > audit.jsonl
    clearance audit export --format ocsf > audit.ocsf.jsonl     # or --format ecs
    clearance audit tail --follow
    clearance audit prune            # with the gate stopped: opening the shard fences its appender

``verify`` is the standalone verifier (``python -m clearance.audit.verify``) with the same
arguments and exit codes: 0 verified, 1 evidence of tampering, 2 unusable input, 3 not enough
evidence yet.
"""

from __future__ import annotations

import sys
import time
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from clearance.errors import ConfigError

if TYPE_CHECKING:
    from clearance.audit.verify.verify import Reader
    from clearance.store.audit_sqlite import SQLiteAuditStorage

app = typer.Typer(no_args_is_help=True, add_completion=False)

DataDir = Annotated[Path, typer.Option("--data-dir", "-d", help="The gate's data directory.")]
Origin = Annotated[
    str | None, typer.Option("--origin", help="Shard origin (default: the only shard).")
]
_DEFAULT_DIR = Path(".clearance")
DB_NAME = "audit.db"  # the audit shard beside the gate store (see cli/runtime.py)
AUDIT_KEY = Path("keys") / "audit.key"


def _storage(data_dir: Path, *, readonly: bool = True) -> SQLiteAuditStorage:
    from clearance.store.audit_sqlite import SQLiteAuditStorage

    db = data_dir / DB_NAME
    if not db.is_file():
        raise ConfigError(
            f"no audit database at `{db}`", hint="run `clearance init` or pass --data-dir"
        )
    return SQLiteAuditStorage(db, readonly=readonly)


def _origin(storage: SQLiteAuditStorage, origin: str | None) -> str:
    if origin is not None:
        return origin
    origins = storage.origins()
    if len(origins) != 1:
        raise ConfigError(f"the store holds {len(origins)} shards", hint="pick one with --origin")
    return origins[0]


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def verify(ctx: typer.Context) -> None:
    """Verify receipts, proofs, consistency proofs or a whole store: every shard and anchor.

    The store is a data directory, a SQLite file or ``--db postgresql://...`` (all replicas).
    """
    from clearance.audit.verify.verify import main

    raise typer.Exit(main(ctx.args, open_db=postgres_reader))


def postgres_reader(url: str) -> Reader:
    """The verifier's view of a PostgreSQL store: one read-only snapshot of every shard."""
    from clearance.audit.verify.verify import ReadError

    try:
        from clearance.store.audit_postgres import SnapshotReader
    except ImportError as exc:
        raise ReadError(
            "reading a PostgreSQL store needs psycopg: pip install 'clearance[postgres]'"
        ) from exc
    return SnapshotReader(url, error=ReadError)


class ExportFormat(StrEnum):
    """Shapes of ``audit export`` lines (see ``clearance.audit.export.FORMATS``)."""

    CLEARANCE = "clearance"
    OCSF = "ocsf"
    ECS = "ecs"


@app.command()
def export(
    data_dir: DataDir = _DEFAULT_DIR,
    origin: Origin = None,
    start: int = 0,
    shape: Annotated[
        ExportFormat,
        typer.Option("--format", help="clearance (audit fields), ocsf (API Activity) or ecs."),
    ] = ExportFormat.CLEARANCE,
) -> None:
    """Write every event as one JSON line, with masked payloads only."""
    from clearance.audit.export import export_lines

    storage = _storage(data_dir)
    try:
        for line in export_lines(storage, origin, start=start, format=shape.value):
            sys.stdout.write(line + "\n")
    finally:
        storage.close()


@app.command()
def tail(
    data_dir: DataDir = _DEFAULT_DIR,
    origin: Origin = None,
    last: Annotated[int, typer.Option("--last", "-n")] = 10,
    follow: Annotated[bool, typer.Option("--follow", "-f")] = False,
    interval: float = 1.0,
) -> None:
    """Print the last events; with --follow keep printing new ones."""
    from clearance.audit.export import tail as tail_events

    storage = _storage(data_dir)

    def wait() -> bool:
        time.sleep(interval)
        return True

    try:
        for line in tail_events(
            storage, _origin(storage, origin), last=last, follow=follow, wait=wait
        ):
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        storage.close()


@app.command()
def prune(
    data_dir: DataDir = _DEFAULT_DIR,
    origin: Origin = None,
    today: Annotated[
        str | None, typer.Option(help="Cutoff date YYYY-MM-DD (default: today, UTC).")
    ] = None,
) -> None:
    """Delete payloads past their retention date (legal holds honoured) and log a prune entry."""
    from clearance.audit.log import AuditLog
    from clearance.audit.retention import Pruner
    from clearance.audit.sign import AuditKey
    from clearance.gate.clock import SystemClock

    clock = SystemClock()
    cutoff = date.fromisoformat(today) if today else clock.now().date()
    storage = _storage(data_dir, readonly=False)
    try:
        key = AuditKey.load(data_dir / AUDIT_KEY)
        log = AuditLog(storage, key, _origin(storage, origin), clock.now)
        try:
            report = Pruner(log, storage).prune(cutoff)
        finally:
            log.close()
    finally:
        storage.close()
    where = f" (prune entry {report.entry_index})" if report.entry_index is not None else ""
    sys.stdout.write(f"pruned {report.pruned} payloads, {report.held} kept by legal holds{where}\n")
