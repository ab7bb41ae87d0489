"""The kit's runtime served as ``clearance serve`` serves it: real uvicorn on 127.0.0.1.

The agent of the kit is registered in staging (the environment the kit opens its sessions in) and
given an agent key, so a ``SidecarTransport`` reaches the same gate, store, audit shard and
approval service the in-process tests use.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from argon2 import PasswordHasher
from tests.integration.integrations.kit import AGENT

from clearance.cli.commands.serve import build_services
from clearance.cli.runtime import Runtime
from clearance.server.app import create_app
from clearance.server.embedded import serve_in_background
from clearance.server.identity import IdentityService
from clearance.server.settings import ServerSettings
from clearance.store.identity_sql import identity_store


@dataclass(frozen=True)
class Sidecar:
    """Where the served gate listens and the agent key that reaches it."""

    base_url: str
    agent_key: str


@contextmanager
def serve_sidecar(runtime: Runtime, settings: ServerSettings | None = None) -> Iterator[Sidecar]:
    """Serve ``runtime`` on a free loopback port with an agent key for the kit's agent."""
    services, _ = build_services(runtime)
    app = create_app(services, settings or ServerSettings())
    identity = IdentityService(
        identity_store(runtime.gate.store),
        runtime.gate.clock,
        hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
    )
    identity.register_agent(AGENT, environment="staging", description="tests", created_by="test")
    key = identity.create_agent_key(AGENT, created_by="test").secret
    with serve_in_background(app) as base_url:
        yield Sidecar(base_url=base_url, agent_key=key)


@pytest.fixture
def sidecar(runtime: Runtime) -> Iterator[Sidecar]:
    with serve_sidecar(runtime) as served:
        yield served
