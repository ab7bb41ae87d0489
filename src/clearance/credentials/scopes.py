"""What a tool's credential is, and which environment it belongs to.

A ``CredentialSpec`` names a secret (never its value), a scope and the environments it exists in;
the value lives only in a backend. Staging and production are separate scopes: the broker picks the
backend from the **session's** environment (set by the trusted opener, never by the agent) and
refuses a backend bound to any other environment, so a staging session cannot reach a production
secret even through a misconfigured mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from clearance.errors import ConfigError
from clearance.model.session import Environment
from clearance.policy.compile import CompiledPolicy

DEFAULT_TTL = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class CredentialSpec:
    """The credential one tool needs (the policy's ``credentials.tools.<tool>``)."""

    tool: str
    secret: str
    scope: str = ""
    environments: frozenset[Environment] = frozenset({Environment.STAGING, Environment.PRODUCTION})
    ttl: timedelta = DEFAULT_TTL

    def __post_init__(self) -> None:
        if self.ttl <= timedelta(0):
            raise ConfigError(f"credentials.tools.{self.tool}.ttl must be positive")
        if not self.environments:
            raise ConfigError(f"credentials.tools.{self.tool} names no environment")


def credential_specs(policy: CompiledPolicy) -> Mapping[str, CredentialSpec]:
    """The per-tool credential specs a compiled policy declares."""
    return {
        tool: CredentialSpec(
            tool=tool,
            secret=spec.secret,
            scope=spec.scope,
            environments=frozenset(Environment(e) for e in spec.environments),
            ttl=spec.ttl,
        )
        for tool, spec in policy.document.credentials.tools.items()
    }
