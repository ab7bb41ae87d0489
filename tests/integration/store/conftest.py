"""Backends for the store contract suite: every test runs once on SQLite and once on PostgreSQL.

``store_url`` names a fresh, migrated, empty store (a temporary SQLite file, or a PostgreSQL
schema of its own); ``open_handle`` opens another handle on the same store, as a second replica
or process would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clearance.store import open_store
from clearance.store.protocol import Store

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend under test."""
    return str(request.param)


@pytest.fixture
def store_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh store of ``backend``."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'clearance.db'}"
    return str(request.getfixturevalue("pg_schema_url"))


@pytest.fixture
def open_handle(store_url: str) -> Iterator[Callable[[], Store]]:
    """Open (and later close) further handles on the store under test."""
    opened: list[Store] = []

    def _open() -> Store:
        handle = open_store(store_url, migrate=False)
        opened.append(handle)
        return handle

    yield _open
    for handle in opened:
        handle.close()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A fresh, migrated store."""
    handle = open_store(store_url)
    yield handle
    handle.close()
