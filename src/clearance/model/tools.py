"""Risk tiers of the tool inventory."""

from __future__ import annotations

from enum import StrEnum


class RiskTier(StrEnum):
    """How much damage a tool can do, from least to most."""

    READ_ONLY = "read-only"
    WRITE_LIMITED = "write-limited"
    WRITE_BROAD = "write-broad"
    DESTRUCTIVE = "destructive"

    @property
    def rank(self) -> int:
        """0 for read-only up to 3 for destructive."""
        return _RANKS[self]

    @property
    def is_high_risk(self) -> bool:
        """Write-broad and destructive: never decayed, longer retention, approval in production."""
        return self.rank >= _RANKS[RiskTier.WRITE_BROAD]


_RANKS = {
    RiskTier.READ_ONLY: 0,
    RiskTier.WRITE_LIMITED: 1,
    RiskTier.WRITE_BROAD: 2,
    RiskTier.DESTRUCTIVE: 3,
}
