"""The credential broker with the local backend, against real decisions of a real gate."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from tests.approvals_kit import ALICE, Kit, kit_fixture  # noqa: F401

from clearance.credentials import CredentialBroker, LocalBackend, Secret, credential_specs
from clearance.credentials.local import env_name
from clearance.errors import CredentialError
from clearance.model.session import Environment

STAGING_VALUE = "stg-vendor-key-1111"
PROD_VALUE = "prod-vendor-key-9999"


def _secrets_file(path: Path, values: dict[str, str], mode: int = 0o600) -> Path:
    path.write_text(json.dumps(values), "utf-8")
    os.chmod(path, mode)
    return path


@pytest.fixture
def broker(kit: Kit, tmp_path: Path) -> CredentialBroker:
    bundle = kit.gate.bundle
    assert bundle is not None
    return CredentialBroker(
        kit.store,
        backends=[
            LocalBackend(
                Environment.STAGING,
                path=_secrets_file(tmp_path / "staging.json", {"vendor_api": STAGING_VALUE}),
            ),
            LocalBackend(
                Environment.PRODUCTION,
                path=None,
                environ={env_name(Environment.PRODUCTION, "vendor_api"): PROD_VALUE},
            ),
        ],
        specs=credential_specs(bundle.compiled),
        audit=kit.audit,
        tokens=kit.service,
    )


def _approved(kit: Kit, environment: str = "staging"):
    s = kit.session(environment=environment)
    req = kit.request(s, "pay_vendor", amount=5, from_account="x", vendor="v")
    d = kit.decide(req)
    assert d.approval_id is not None
    kit.service.approve(d.approval_id, ALICE, kit.clock.now())
    token = kit.token_for(d, req)
    permit = kit.decide(req, token)
    assert permit.permitted
    return s, token, permit


def test_permit_decision_buys_one_credential_of_the_sessions_environment(
    kit: Kit, broker: CredentialBroker
) -> None:
    s, _, permit = _approved(kit)
    cred = broker.issue(
        agent_id=s.agent_id,
        session_id=s.session_id,
        tool="pay_vendor",
        decision_id=permit.decision_id,
        now=kit.clock.now(),
    )
    assert cred.secret.reveal() == STAGING_VALUE
    assert cred.environment is Environment.STAGING
    assert cred.expires_at == kit.clock.now() + timedelta(minutes=5)
    with pytest.raises(CredentialError, match="already used"):
        broker.issue(
            agent_id=s.agent_id,
            session_id=s.session_id,
            tool="pay_vendor",
            decision_id=permit.decision_id,
            now=kit.clock.now(),
        )


def test_production_session_gets_the_production_value(kit: Kit, broker: CredentialBroker) -> None:
    s, token, _ = _approved(kit, environment="production")
    cred = broker.issue(
        agent_id=s.agent_id,
        session_id=s.session_id,
        tool="pay_vendor",
        token=token,
        now=kit.clock.now(),
    )
    assert cred.secret.reveal() == PROD_VALUE


def test_secret_never_reaches_the_audit_log_or_repr(kit: Kit, broker: CredentialBroker) -> None:
    s, _, permit = _approved(kit)
    cred = broker.issue(
        agent_id=s.agent_id,
        session_id=s.session_id,
        tool="pay_vendor",
        decision_id=permit.decision_id,
        now=kit.clock.now(),
    )
    assert STAGING_VALUE not in repr(cred)
    assert STAGING_VALUE not in f"{cred.secret}"
    assert STAGING_VALUE not in json.dumps(kit.audit.events, default=str)
    assert "credential.issued" in kit.audit.kinds()


def test_old_denied_or_foreign_decisions_buy_nothing(kit: Kit, broker: CredentialBroker) -> None:
    s, _, permit = _approved(kit)
    other = kit.session(agent_id="fin-2")
    with pytest.raises(CredentialError):
        broker.issue(
            agent_id=other.agent_id,
            session_id=other.session_id,
            tool="pay_vendor",
            decision_id=permit.decision_id,
            now=kit.clock.now(),
        )
    with pytest.raises(CredentialError):
        broker.issue(
            agent_id=s.agent_id,
            session_id=s.session_id,
            tool="pay_vendor",
            decision_id=permit.decision_id,
            now=kit.clock.now() + timedelta(minutes=3),
        )
    denied = kit.decide(kit.request(s, "wire_abroad", amount=1))
    assert not denied.permitted
    with pytest.raises(CredentialError):
        broker.issue(
            agent_id=s.agent_id,
            session_id=s.session_id,
            tool="pay_vendor",
            decision_id=denied.decision_id,
            now=kit.clock.now(),
        )
    with pytest.raises(CredentialError):
        broker.issue(
            agent_id=s.agent_id, session_id=s.session_id, tool="pay_vendor", now=kit.clock.now()
        )


def test_tool_without_a_declared_credential_gets_none(kit: Kit, broker: CredentialBroker) -> None:
    s = kit.session()
    d = kit.decide(kit.request(s, "read_account", account_id="a"))
    assert d.permitted
    with pytest.raises(CredentialError, match="declares no credential"):
        broker.issue(
            agent_id=s.agent_id,
            session_id=s.session_id,
            tool="read_account",
            decision_id=d.decision_id,
            now=kit.clock.now(),
        )


def test_secrets_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    from clearance.credentials.scopes import CredentialSpec

    backend = LocalBackend(
        Environment.STAGING, path=_secrets_file(tmp_path / "s.json", {"k": "v"}, 0o644), environ={}
    )
    with pytest.raises(CredentialError, match="readable by others"):
        backend.issue(CredentialSpec(tool="t", secret="k"), now=None)  # type: ignore[arg-type]


def test_secret_is_not_picklable_or_printable() -> None:
    import pickle

    s = Secret("hunter2")
    assert str(s) == repr(s) == "Secret(****)"
    with pytest.raises(TypeError):
        pickle.dumps(s)


def test_revoke_for_marks_every_live_lease(kit: Kit, broker: CredentialBroker) -> None:
    s, _, permit = _approved(kit)
    broker.issue(
        agent_id=s.agent_id,
        session_id=s.session_id,
        tool="pay_vendor",
        decision_id=permit.decision_id,
        now=kit.clock.now(),
    )
    assert broker.revoke_for(s.agent_id, kit.clock.now()) == 1
    assert broker.revoke_for(s.agent_id, kit.clock.now()) == 0
