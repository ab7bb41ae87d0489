"""Findings and errors of the standalone verifier.

``VerificationError`` deliberately does not inherit ``clearance.errors.ClearanceError``: this
package must run with nothing of clearance installed but ``clearance.formats``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """Process exit codes of ``python -m clearance.audit.verify``."""

    VERIFIED = 0
    TAMPERED = 1
    UNUSABLE = 2
    INSUFFICIENT = 3


class Severity(IntEnum):
    """How bad a finding is; the worst finding decides the exit code."""

    INFO = 0
    INSUFFICIENT = 1
    UNUSABLE = 2
    TAMPERED = 3


_EXIT = {
    Severity.INFO: ExitCode.VERIFIED,
    Severity.INSUFFICIENT: ExitCode.INSUFFICIENT,
    Severity.UNUSABLE: ExitCode.UNUSABLE,
    Severity.TAMPERED: ExitCode.TAMPERED,
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of verifier output: what was found, where, and what it means."""

    severity: Severity
    message: str
    source: str = ""
    index: int | None = None

    def to_line(self) -> str:
        """``FAIL <source> entry <i>: <message>`` style text."""
        label = {
            Severity.INFO: "ok",
            Severity.INSUFFICIENT: "undecided",
            Severity.UNUSABLE: "error",
            Severity.TAMPERED: "FAIL",
        }[self.severity]
        where = self.source + (f" entry {self.index}" if self.index is not None else "")
        return f"{label}: {where}: {self.message}" if where else f"{label}: {self.message}"

    def to_dict(self) -> dict[str, object]:
        """Machine form for ``--json``."""
        return {
            "severity": self.severity.name.lower(),
            "source": self.source,
            "index": self.index,
            "message": self.message,
        }


def exit_code(findings: list[Finding]) -> ExitCode:
    """The exit code of the worst finding (``VERIFIED`` when there is none)."""
    worst = max((f.severity for f in findings), default=Severity.INFO)
    return _EXIT[worst]


@dataclass
class Report:
    """Findings of one verification run and, for ``log``, the state to save."""

    findings: list[Finding] = field(default_factory=list)
    state: dict[str, Any] | None = None
    entries_checked: int = 0

    def add(
        self, severity: Severity, message: str, source: str = "", index: int | None = None
    ) -> None:
        """Record a finding."""
        self.findings.append(Finding(severity, message, source, index))

    @property
    def exit_code(self) -> ExitCode:
        """Exit code of the worst finding."""
        return exit_code(self.findings)

    @property
    def tampered(self) -> bool:
        """True if any finding is evidence of tampering."""
        return self.exit_code == ExitCode.TAMPERED


class VerificationError(Exception):
    """Evidence could not be verified; ``finding`` says why and how bad it is."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.to_line())
        self.finding = finding
