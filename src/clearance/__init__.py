"""clearance: a deterministic, auditable authorization gate in front of every AI-agent tool call.

The root exposes the embedding API lazily, so ``import clearance.audit.verify`` (the standalone
verifier) loads no gate code, no pydantic and no YAML parser.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "Gate": "clearance.gate.gate",
    "GateConfig": "clearance.gate.config",
    "Request": "clearance.model.request",
    "Decision": "clearance.model.decision",
    "Outcome": "clearance.model.decision",
    "Obligation": "clearance.model.decision",
    "Verdict": "clearance.model.decision",
    "RiskTier": "clearance.model.tools",
    "Session": "clearance.model.session",
    "Environment": "clearance.model.session",
    "ActionResult": "clearance.model.result",
    "load_policy": "clearance.policy",
    "Bundle": "clearance.policy.bundle",
    "open_store": "clearance.store",
    "ClearanceError": "clearance.errors",
    "ConfigError": "clearance.errors",
    "PolicyError": "clearance.errors",
    "RequestError": "clearance.errors",
    "StoreError": "clearance.errors",
    "AuditError": "clearance.errors",
    "ApprovalError": "clearance.errors",
}

__all__ = [
    "ActionResult",
    "ApprovalError",
    "AuditError",
    "Bundle",
    "ClearanceError",
    "ConfigError",
    "Decision",
    "Environment",
    "Gate",
    "GateConfig",
    "Obligation",
    "Outcome",
    "PolicyError",
    "Request",
    "RequestError",
    "RiskTier",
    "Session",
    "StoreError",
    "Verdict",
    "load_policy",
    "open_store",
    "__version__",
]

if TYPE_CHECKING:
    from clearance.errors import (
        ApprovalError,
        AuditError,
        ClearanceError,
        ConfigError,
        PolicyError,
        RequestError,
        StoreError,
    )
    from clearance.gate.config import GateConfig
    from clearance.gate.gate import Gate
    from clearance.model.decision import Decision, Obligation, Outcome, Verdict
    from clearance.model.request import Request
    from clearance.model.result import ActionResult
    from clearance.model.session import Environment, Session
    from clearance.model.tools import RiskTier
    from clearance.policy import load_policy
    from clearance.policy.bundle import Bundle
    from clearance.store import open_store


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'clearance' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
