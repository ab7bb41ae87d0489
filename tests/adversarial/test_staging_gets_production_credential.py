"""Attack: a staging session tries to obtain a production credential."""

from __future__ import annotations

import pytest
from tests.approvals_kit import ALICE, Kit, kit_fixture  # noqa: F401

from clearance.credentials import CredentialBroker, LocalBackend, credential_specs
from clearance.credentials.local import env_name
from clearance.errors import CredentialError
from clearance.model.session import Environment

PROD = "prod-only-secret-7777"


def _permit(kit: Kit, tool: str, **args: object):
    s = kit.session(environment="staging")
    req = kit.request(s, tool, **args)
    d = kit.decide(req)
    assert d.approval_id is not None
    kit.service.approve(d.approval_id, ALICE, kit.clock.now())
    permit = kit.decide(req, kit.token_for(d, req))
    assert permit.permitted
    return s, permit


def test_staging_session_gets_no_production_secret(kit: Kit) -> None:
    bundle = kit.gate.bundle
    assert bundle is not None
    environ = {
        env_name(Environment.PRODUCTION, "vendor_api"): PROD,
        env_name(Environment.PRODUCTION, "bank_api"): PROD,
    }
    broker = CredentialBroker(
        kit.store,
        backends=[LocalBackend(Environment.PRODUCTION, environ=environ)],
        specs=credential_specs(bundle.compiled),
        audit=kit.audit,
    )
    # A tool whose credential exists only in production.
    s, permit = _permit(kit, "transfer_funds", amount=5, to_account="acc-1")
    with pytest.raises(CredentialError, match="no credential in staging"):
        broker.issue(
            agent_id=s.agent_id,
            session_id=s.session_id,
            tool="transfer_funds",
            decision_id=permit.decision_id,
            now=kit.clock.now(),
        )
    # A tool with a credential in both: only the production backend exists, and it is not used.
    s, permit = _permit(kit, "pay_vendor", amount=5, from_account="x", vendor="v")
    with pytest.raises(CredentialError, match="no credential backend is configured for staging"):
        broker.issue(
            agent_id=s.agent_id,
            session_id=s.session_id,
            tool="pay_vendor",
            decision_id=permit.decision_id,
            now=kit.clock.now(),
        )
    # Even the staging backend never reads production variables of the same process.
    staging = LocalBackend(Environment.STAGING, environ=environ)
    broker = CredentialBroker(
        kit.store, backends=[staging], specs=credential_specs(bundle.compiled), audit=kit.audit
    )
    with pytest.raises(CredentialError, match="no staging secret"):
        broker.issue(
            agent_id=s.agent_id,
            session_id=s.session_id,
            tool="pay_vendor",
            decision_id=permit.decision_id,
            now=kit.clock.now(),
        )
    import json

    assert PROD not in json.dumps(kit.audit.events, default=str)
