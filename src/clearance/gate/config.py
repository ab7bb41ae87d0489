"""Every limit of the gate, explicit, with the defaults documented in one place."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class GateConfig(BaseModel):
    """Limits and identities of one gate node."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    deadline_ms: float = Field(
        default=2000.0,
        gt=0,
        description="a decision that takes longer than this is SILENCE (includes the audit commit)",
    )
    max_args_bytes: int = Field(
        default=256 * 1024, gt=0, description="requests whose args serialise larger are SILENCE"
    )
    idempotency_window_s: int = Field(
        default=24 * 3600, gt=0, description="how long an idempotency key keeps its decision"
    )
    replica_id: str = Field(default="node", pattern=r"^[a-z0-9.-]+$")
    deployment: str = Field(default="clearance.local/audit", pattern=r"^[a-z0-9./-]+$")
