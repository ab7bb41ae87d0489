"""An adapter never turns an argument JSON cannot carry into another value: NaN is not null."""

from __future__ import annotations

import math

import pytest
from tests.integration.integrations.kit import decisions_in_log

from clearance.cli.runtime import Runtime
from clearance.errors import RequestError
from clearance.integrations.guard import Guard
from clearance.integrations.mapping import SessionHandle
from clearance.integrations.transport import InProcessTransport


@pytest.mark.parametrize("amount", [math.nan, math.inf, 2**60])
def test_the_tool_does_not_run_and_nothing_is_decided(
    runtime: Runtime, session: SessionHandle, amount: float
) -> None:
    guard = Guard(InProcessTransport(runtime.gate, approvals=runtime.approvals), session)
    ran: list[object] = []

    @guard.tool()
    def transfer_funds(amount: float, to_account: str) -> str:
        ran.append(amount)
        return "sent"

    before = len(decisions_in_log(runtime))
    with pytest.raises(RequestError, match="not JSON"):
        transfer_funds(amount=amount, to_account="acc-1")
    assert ran == []
    assert len(decisions_in_log(runtime)) == before
