"""A served gate on 127.0.0.1 with real identities: one agent key per environment, an orchestrator
key, operators with each role. Requests go over real HTTP with httpx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from tests.conftest import SMALL_POLICY

from clearance.cli.commands.serve import build_services
from clearance.cli.runtime import Runtime, create_keys, open_runtime
from clearance.gate.clock import FixedClock
from clearance.gate.config import GateConfig
from clearance.gate.gate import Gate
from clearance.policy import load_policy
from clearance.policy.bundle import Bundle
from clearance.server.app import GateServices, create_app
from clearance.server.embedded import serve_in_background
from clearance.server.identity import IdentityService, Role
from clearance.server.settings import ServerSettings
from clearance.store.identity_sql import identity_store

PASSWORD = "correct horse battery staple"


@dataclass
class World:
    """The served gate and the credentials the tests use."""

    base_url: str
    gate: Gate
    identity: IdentityService
    agent_key: str
    staging_agent_key: str
    orchestrator_key: str

    def agent(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {key or self.agent_key}"},
            timeout=10,
        )

    def orchestrator(self) -> httpx.Client:
        return self.agent(self.orchestrator_key)

    def operator(self, username: str = "ana") -> tuple[httpx.Client, str]:
        client = httpx.Client(base_url=self.base_url, timeout=10)
        response = client.post("/v1/ops/login", json={"username": username, "password": PASSWORD})
        assert response.status_code == 200, response.text
        return client, response.json()["csrf_token"]

    def open_session(self, agent_id: str = "payments-bot", task: str = "transfer") -> str:
        with self.orchestrator() as client:
            response = client.post("/v1/sessions", json={"agent_id": agent_id, "task": task})
        assert response.status_code == 201, response.text
        return str(response.json()["session_id"])


def build_identities(identity: IdentityService) -> dict[str, str]:
    """Agents, keys and operators every served world has."""
    identity.register_agent(
        "payments-bot", environment="production", description="pays", created_by="setup"
    )
    identity.register_agent(
        "staging-bot", environment="staging", description="tries", created_by="setup"
    )
    keys = {
        "agent": identity.create_agent_key("payments-bot", created_by="setup").secret,
        "staging": identity.create_agent_key("staging-bot", created_by="setup").secret,
        "orchestrator": identity.create_orchestrator_key(
            "runner", environment="production", created_by="setup"
        ).secret,
    }
    identity.create_operator("ana", PASSWORD, {Role.APPROVER})
    identity.create_operator("bo", PASSWORD, {Role.APPROVER})
    identity.create_operator("vic", PASSWORD, {Role.VIEWER})
    identity.create_operator("root", PASSWORD, {Role.ADMIN})
    return keys


@pytest.fixture
def settings() -> ServerSettings:
    return ServerSettings(max_body_bytes=64 * 1024)


@pytest.fixture
def services(gate: Gate) -> GateServices:
    return GateServices(gate=gate)


def serve_world(services: GateServices, settings: ServerSettings) -> Iterator[World]:
    """Identities in the gate's store, the app served on 127.0.0.1, the credentials to use it."""
    app = create_app(services, settings)
    # Cheap argon2 parameters for test operators; the hash records them, so verifying stays cheap.
    identity = IdentityService(
        identity_store(services.gate.store),
        services.gate.clock,
        hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
    )
    keys = build_identities(identity)
    with serve_in_background(app) as base_url:
        yield World(
            base_url=base_url,
            gate=services.gate,
            identity=identity,
            agent_key=keys["agent"],
            staging_agent_key=keys["staging"],
            orchestrator_key=keys["orchestrator"],
        )


@pytest.fixture
def world(services: GateServices, settings: ServerSettings) -> Iterator[World]:
    """The bare gate (no audit, approvals or kill switch) served."""
    yield from serve_world(services, settings)


@pytest.fixture
def runtime(tmp_path: Path, clock: FixedClock, small_bundle: Bundle) -> Iterator[Runtime]:
    """A data directory with keys, audit shard, approvals and the small policy active."""
    data_dir = tmp_path / "data"
    create_keys(data_dir, GateConfig().deployment)
    rt = open_runtime(
        data_dir,
        store_url=f"sqlite:///{data_dir / 'clearance.db'}",
        clock=clock,
        require_policy=False,
    )
    rt.gate.activate(small_bundle, by="test")
    yield rt
    rt.close()


def compose_and_serve(runtime: Runtime, settings: ServerSettings) -> Iterator[World]:
    """The composed service (as `clearance serve` builds it) served."""
    services, _ = build_services(runtime)
    yield from serve_world(services, settings)


@pytest.fixture
def full_world(runtime: Runtime, settings: ServerSettings) -> Iterator[World]:
    """The composed service: audit log, approvals, kill switch."""
    yield from compose_and_serve(runtime, settings)


EXTRA_POLICY = """\
credentials:
  tools:
    read_account: {secret: ledger_api, ttl: 5m}
    transfer_funds: {secret: bank_api, environments: [production]}
    delete_records: {secret: db_admin}
breakglass:
  operators: [gus]
  scope:
    agents: ["*"]
    tools: [delete_records, transfer_funds]
    tiers: [write-broad, destructive]
  max_duration: 1h
"""
"""Credentials for three tools and a break-glass grant for `gus`, added to the small policy."""

SECRETS = {
    "staging": {"ledger_api": "stg-ledger-1111", "db_admin": "stg-db-2222"},
    "production": {
        "ledger_api": "prod-ledger-9999",
        "bank_api": "prod-bank-8888",
        "db_admin": "prod-db-7777",
    },
}
"""The values of the data directory's 0600 secrets files, per environment."""


@pytest.fixture
def brokered_runtime(runtime: Runtime) -> Runtime:
    """The composed runtime with the extended policy active and 0600 secrets files in place."""
    folder = runtime.data_dir / "secrets"
    folder.mkdir(mode=0o700)
    for environment, values in SECRETS.items():
        path = folder / f"{environment}.json"
        path.write_text(json.dumps(values), "utf-8")
        path.chmod(0o600)
    runtime.gate.activate(load_policy(SMALL_POLICY + EXTRA_POLICY, source_name="x.yaml"), by="test")
    return runtime


@pytest.fixture
def brokered_world(brokered_runtime: Runtime, settings: ServerSettings) -> Iterator[World]:
    """The composed service over the extended policy, with a break-glass operator `gus`."""
    for world in compose_and_serve(brokered_runtime, settings):
        world.identity.create_operator("gus", PASSWORD, {Role.BREAK_GLASS})
        world.identity.create_operator("hal", PASSWORD, {Role.BREAK_GLASS})
        yield world
