"""A staging gate for ``clearance redteam --url``: ``clearance serve``'s composition on a real
SQLite data directory, served by uvicorn on 127.0.0.1 (``conftest.compose_and_serve``), with the
credentials a red-team run needs created the way an operator creates them (orchestrator keys per
environment, an admin, approvers named in the policy's approver groups)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from clearance.cli.runtime import Runtime, create_keys, open_runtime
from clearance.gate.config import GateConfig
from clearance.integrations.redteam_http import password_env
from clearance.model.session import Environment
from clearance.policy.bundle import Bundle
from clearance.server.identity import IdentityService, Role
from clearance.server.settings import ServerSettings

from .conftest import compose_and_serve  # noqa: TID252 - sibling fixture module

PASSWORD = "red team staging password"
ADMIN = "rt-admin"
#: FinanceApp's approver groups (finance: op-alice, op-bob; dba: op-carol, op-dave); critical
#: requests need two distinct members of a group.
APPROVERS = ("op-alice", "op-bob", "op-carol", "op-dave")


@dataclass
class Staging:
    """The served gate, its runtime and the credentials of a red-team run against it."""

    url: str
    runtime: Runtime
    identity: IdentityService
    orchestrator_keys: dict[Environment, str]
    operators: tuple[str, ...] = (ADMIN, *APPROVERS)

    def args(self, *, keys: dict[Environment, str] | None = None) -> list[str]:
        """The ``--url``, ``--orchestrator-key`` and ``--operator`` options of a full run."""
        out = ["--url", self.url]
        for env, key in (keys if keys is not None else self.orchestrator_keys).items():
            out += ["--orchestrator-key", f"{env.value}={key}"]
        for name in self.operators:
            out += ["--operator", name]
        return out

    def env(self) -> dict[str, str]:
        """The operators' password variables."""
        return {password_env(name): PASSWORD for name in self.operators}

    def admin(self) -> tuple[httpx.Client, str]:
        """An operator session of the admin (cookie jar and CSRF token)."""
        client = httpx.Client(base_url=self.url, timeout=30)
        response = client.post("/v1/ops/login", json={"username": ADMIN, "password": PASSWORD})
        assert response.status_code == 200, response.text
        return client, str(response.json()["csrf_token"])

    def redteam_agents(self) -> list[str]:
        """The agents red-team runs registered on this gate."""
        return [
            a.agent_id
            for a in self.identity.records.list_agents()
            if a.agent_id.startswith("redteam-")
        ]


@contextmanager
def staging_gate(tmp_path: Path, bundle: Bundle) -> Iterator[Staging]:
    """Serve ``bundle`` as ``clearance serve`` would, with red-team credentials in place."""
    data_dir = tmp_path / "staging"
    create_keys(data_dir, GateConfig().deployment)
    runtime = open_runtime(
        data_dir, store_url=f"sqlite:///{data_dir / 'clearance.db'}", require_policy=False
    )
    runtime.gate.activate(bundle, by="staging-setup")
    served = compose_and_serve(runtime, ServerSettings())
    try:
        world = next(served)
        identity = world.identity
        keys = {
            env: identity.create_orchestrator_key(
                f"redteam-{env.value}", environment=env, created_by="staging-setup"
            ).secret
            for env in Environment
        }
        identity.create_operator(ADMIN, PASSWORD, {Role.ADMIN})
        for name in APPROVERS:
            identity.create_operator(name, PASSWORD, {Role.APPROVER})
        yield Staging(
            url=world.base_url, runtime=runtime, identity=identity, orchestrator_keys=keys
        )
    finally:
        served.close()
        runtime.close()
