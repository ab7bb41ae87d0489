"""Errors of the control plane (kill switch, drains, breakers)."""

from __future__ import annotations

from clearance.errors import ClearanceError


class ControlError(ClearanceError):
    """A kill-switch operation cannot be done in the current state (nothing to resume, ...)."""

    code = "control_error"
