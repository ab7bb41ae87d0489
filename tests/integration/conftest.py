"""PostgreSQL for integration tests: one skip-or-fail rule, and a fresh schema per test.

The server is ``$CLEARANCE_TEST_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/test``).
When it cannot be reached (or psycopg is not installed) the tests that need it are skipped with
the reason, except under ``CI=true`` where the same condition fails them (STYLE.md section 6:
misconfigured CI must not pass by skipping).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"

_probe: dict[str, str | None] = {}


def postgres_admin_url() -> str:
    """The server URL, or skip (fail under ``CI=true``) when PostgreSQL is unusable here.

    The one place that decides the skip policy; every PostgreSQL fixture goes through it.
    """
    url = os.environ.get("CLEARANCE_TEST_POSTGRES", DEFAULT_POSTGRES)
    if url not in _probe:
        _probe[url] = _unusable_reason(url)
    reason = _probe[url]
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (required because CI=true)", pytrace=False)
        pytest.skip(reason)
    return url


def _unusable_reason(url: str) -> str | None:
    try:
        import psycopg
        import psycopg_pool  # noqa: F401
    except ImportError as exc:
        return f"PostgreSQL tests need psycopg and psycopg-pool ({exc.name} is not installed)"
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"PostgreSQL is not reachable at {url}: {first}"
    return None


class PostgresAdmin:
    """Statements on the test server as its admin user, each in autocommit."""

    def __init__(self, url: str) -> None:
        self.url = url

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement; return its rows (empty for statements without a result)."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True, connect_timeout=2) as conn:
            cur = conn.execute(sql, params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []


def url_with_search_path(url: str, schema: str) -> str:
    """``url`` whose connections use ``schema`` first (libpq ``options=-csearch_path=...``)."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}', safe='')}"


@pytest.fixture
def pg_admin() -> PostgresAdmin:
    """The test server (skipped, or failed under ``CI=true``, when it is not usable)."""
    return PostgresAdmin(postgres_admin_url())


@pytest.fixture
def pg_schema_url(pg_admin: PostgresAdmin) -> Iterator[str]:
    """A URL whose connections see only a fresh, empty schema; the schema is dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    pg_admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield url_with_search_path(pg_admin.url, schema)
    finally:
        pg_admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
