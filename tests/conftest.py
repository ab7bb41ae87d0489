"""Shared fixtures: a real SQLite store in a temp directory, a small policy, a gate."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from clearance.gate.clock import FixedClock
from clearance.gate.gate import Gate
from clearance.policy import load_policy
from clearance.policy.bundle import Bundle
from clearance.store import open_store
from clearance.store.protocol import Store

SMALL_POLICY = """\
version: "1"
name: small
default: deny
tools:
  read_account:
    tier: read-only
    params:
      account_id: {type: string, required: true, pattern: "acc-[0-9]{1,8}"}
  transfer_funds:
    tier: write-broad
    params:
      amount: {type: number, required: true, min: 0.01, max: 1000000}
      to_account: {type: string, required: true, pattern: "acc-[0-9]{1,8}"}
  delete_records:
    tier: destructive
    params:
      table: {type: string, required: true}
tasks:
  balance_check: {tools: [read_account]}
  transfer: {tools: [read_account, transfer_funds]}
  cleanup: {tools: [read_account, delete_records]}
environments:
  staging: {}
  production: {approval_tiers: [write-broad, destructive]}
data:
  known_payees: [acc-1, acc-2]
rules:
  - id: reads
    tools: [read_account]
    outcome: permit
    reason: reads are harmless
  - id: small-known-transfer
    tools: [transfer_funds]
    when: args.amount <= 1000.0 && args.to_account in data.known_payees
    outcome: permit
    reason: small transfers to known payees
  - id: large-or-unknown-transfer
    tools: [transfer_funds]
    when: args.amount > 1000.0 || !(args.to_account in data.known_payees)
    outcome: approval
    reason: large transfers and new payees need a human
  - id: never-delete
    tools: [delete_records]
    outcome: deny
    reason: the agent never deletes records
"""

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak",
        action="store_true",
        default=False,
        help="run the reliability suite's long mode (also CLEARANCE_SOAK=1)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "reliability: crash, fault, fuzz and load runs (tests/reliability; bounded)"
    )


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    st = open_store(f"sqlite:///{tmp_path / 'clearance.db'}")
    yield st
    st.close()


@pytest.fixture
def small_bundle() -> Bundle:
    return load_policy(SMALL_POLICY, source_name="small.yaml")


@pytest.fixture
def gate(store: Store, clock: FixedClock, small_bundle: Bundle) -> Gate:
    g = Gate(store, clock=clock)
    g.activate(small_bundle, by="test")
    return g
