"""Errors of the control plane (kill switch, drains, breakers)."""

from __future__ import annotations

from clearance.errors import ClearanceError


class ControlError(ClearanceError):
    """A kill-switch operation cannot be done in the current state (nothing to resume, ...)."""

    code = "control_error"


class ScopeNotCoveredError(ControlError):
    """A halt hook that acts per agent was asked to act on a tool, an environment or everything.

    Expected, not a fault: the halt itself is in force; the stop's status shows the hook did not
    run for that scope.
    """

    code = "scope_not_covered"
