"""Replica processes on one PostgreSQL database of their own.

A database (not just a schema) per test lets a test make *its* database unreachable
(``ALLOW_CONNECTIONS false`` and terminated backends) without disturbing anything else running on
the same server, which is how the outage tests simulate a database restart.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

WORKER = Path(__file__).with_name("_worker.py")

#: The policy of the gate-replica tests: reads are permitted, vendor payments need approval.
POLICY = """\
version: "1"
name: replicas
default: deny
tools:
  read_account:
    tier: read-only
    params:
      account_id: {type: string, required: true}
  pay_vendor:
    tier: write-limited
    params:
      amount: {type: number, required: true, min: 0.01, max: 1000000}
      vendor: {type: string, required: true}
tasks:
  payments: {tools: [read_account, pay_vendor]}
environments:
  staging: {}
  production: {}
approvals:
  timeout: 15m
  groups:
    payments: [alice, bob]
  default_group: payments
rules:
  - id: reads
    tools: [read_account]
    outcome: permit
  - id: vendor-payments
    tools: [pay_vendor]
    outcome: approval
    reason: vendor payments need a human
"""


class Replica:
    """One worker process (``_worker.py``) and the JSON lines it printed."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def readline(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next JSON line (blocking; the worker prints promptly)."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"worker ended: {self.stderr()}")
        assert time.monotonic() < deadline
        return dict(json.loads(line))

    def finish(self, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Wait for the process to end successfully; return every remaining JSON line."""
        out, err = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode == 0, err
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def stderr(self) -> str:
        self.proc.kill()
        _, err = self.proc.communicate(timeout=10)
        return err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=10)


@pytest.fixture
def pg_database_url(pg_admin: Any) -> Iterator[str]:
    """A fresh database on the test server, migrated; dropped (forcibly) afterwards."""
    from clearance.store.postgres import PostgresStore

    name = f"clearance_rep_{uuid.uuid4().hex[:10]}"
    pg_admin.execute(f"CREATE DATABASE {name}")
    parts = urlsplit(pg_admin.url)
    url = urlunsplit(parts._replace(path=f"/{name}"))
    store = PostgresStore(url)
    store.migrate()
    store.close()
    try:
        yield url
    finally:
        pg_admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        pg_admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def spawn() -> Iterator[Any]:
    """Start worker processes; any still running at the end are killed."""
    started: list[Replica] = []

    def start(*args: str) -> Replica:
        replica = Replica(*args)
        started.append(replica)
        return replica

    yield start
    for replica in started:
        replica.kill()


@pytest.fixture
def deployment(pg_database_url: str, tmp_path: Path) -> tuple[Path, str, str]:
    """A data directory (keys, policy) whose store is this test's own database."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    data_dir = tmp_path / "gate"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "clearance",
            "init",
            "--data-dir",
            str(data_dir),
            "--store",
            pg_database_url,
            "--policy",
            str(policy),
        ],
        check=True,
        capture_output=True,
    )
    vkey = (data_dir / "keys" / "audit.pub").read_text().strip()
    return data_dir, pg_database_url, vkey
