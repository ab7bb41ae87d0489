"""Persistence: one protocol (``Store``), two backends selected by URL."""

from __future__ import annotations

from clearance.errors import ConfigError
from clearance.store.protocol import Store


def open_store(url: str, *, migrate: bool = True) -> Store:
    """Open ``sqlite:///path`` (embedded default) or ``postgresql://...`` (replicas)."""
    if url.startswith("sqlite:///"):
        from clearance.store.sqlite import SQLiteStore

        store: Store = SQLiteStore(url.removeprefix("sqlite:///"))
    elif url.startswith(("postgresql://", "postgres://")):
        try:
            from clearance.store.postgres import PostgresStore
        except ImportError as exc:
            raise ConfigError(
                "the PostgreSQL backend needs psycopg",
                hint="install it with `pip install 'clearance[postgres]'`",
            ) from exc
        store = PostgresStore(url)
    else:
        raise ConfigError(
            f"unknown store url `{url}`",
            hint="use `sqlite:///path/to/clearance.db` or `postgresql://user@host/db`",
        )
    if migrate:
        store.migrate()
    return store


__all__ = ["Store", "open_store"]
