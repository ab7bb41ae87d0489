"""``clearance db``: schema migrations and reachability of the store.

::

    clearance db migrate --store postgresql://clearance@db.internal/clearance
    clearance db status  --store postgresql://clearance@db.internal/clearance --json

``migrate`` is safe to run from several replicas at once (PostgreSQL serialises it on an advisory
lock; each migration is applied once). ``status`` exits 0 when the store answers and its schema is
current, 3 when migrations are pending, and with the store error's code when it cannot be reached,
so deploy scripts can gate on it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from clearance.cli.runtime import DEFAULT_DATA_DIR, store_url_for
from clearance.store import open_store

PENDING_EXIT_CODE = 3

app = typer.Typer(no_args_is_help=True, add_completion=False)

StoreURL = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Store URL (sqlite:///path or postgresql://...); default: the data dir's SQLite file.",
    ),
]
DataDir = Annotated[Path, typer.Option("--data-dir", "-d", help="The gate's data directory.")]

_out = Console(highlight=False, soft_wrap=True)

# The pool logs every failed reconnection attempt; a one-shot command reports the error once.
logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)


@app.command()
def migrate(store: StoreURL = None, data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Apply pending schema migrations (forward only)."""
    st = open_store(store_url_for(data_dir, store), migrate=False)
    try:
        applied = st.migrate()
        version, latest = st.schema_version()
    finally:
        st.close()
    for name in applied:
        _out.print(f"applied {name}")
    _out.print(f"{st.url}: schema at version {version} (latest {latest})")


@app.command()
def status(
    store: StoreURL = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Check that the store answers and whether migrations are pending."""
    st = open_store(store_url_for(data_dir, store), migrate=False)
    try:
        version, latest = st.schema_version()
    finally:
        st.close()
    current = version >= latest
    if as_json:
        _out.print(
            json.dumps(
                {
                    "store": st.url,
                    "reachable": True,
                    "version": version,
                    "latest": latest,
                    "current": current,
                },
                sort_keys=True,
            ),
            markup=False,
        )
    else:
        state = "current" if current else "migrations pending: run `clearance db migrate`"
        _out.print(
            f"{st.url}: reachable; schema at version {version} of {latest} ({state})", markup=False
        )
    if not current:
        raise typer.Exit(code=PENDING_EXIT_CODE)
