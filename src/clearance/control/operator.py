"""Who may change the kill switch: an operator principal and the roles each action needs.

Stopping is always safe, so more roles may halt than may resume: resuming lets an agent act again
and needs an administrator. An agent credential never maps to an ``Operator``; the server maps its
authenticated operator principal (username and roles) onto this value, the CLI maps the local
user who can already write the store file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from clearance.errors import AuthorizationError

#: Roles that may drain or halt a scope and escalate a breaker trip to a halt.
HALT_ROLES: frozenset[str] = frozenset({"admin", "approver"})
#: Roles that may resume a halted, drained or tripped scope.
RESUME_ROLES: frozenset[str] = frozenset({"admin"})


@dataclass(frozen=True, slots=True)
class Operator:
    """An authenticated human operator: an id for the audit log and the roles it holds."""

    id: str
    roles: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if not self.id.strip():
            raise AuthorizationError(
                "an operator identity is required", hint="name the operator who takes this action"
            )

    def require(self, allowed: frozenset[str], action: str) -> None:
        """Raise ``AuthorizationError`` unless the operator holds one of ``allowed``."""
        if not self.roles & allowed:
            raise AuthorizationError(
                f"operator `{self.id}` may not {action}",
                hint=f"{action} needs one of the roles {', '.join(sorted(allowed))}",
            )
