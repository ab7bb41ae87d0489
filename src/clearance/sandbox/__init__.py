"""Sandboxed code execution with allowlisted egress.

A job (Python code, a shell command, or a command line plus input files) runs in a fresh,
disposable sandbox that sees no host secrets, has no network, and cannot outlive its caps. Network
access exists only through a per-job allowlisting proxy, and only when policy grants it.

::

    from clearance.sandbox import Job, Sandbox, SandboxLimits

    sandbox = Sandbox()                      # checks a backend works; SandboxError if none does
    result = sandbox.run(Job(kind="shell", code="echo hi > note.txt; echo done"),
                         SandboxLimits(wall_seconds=5), owner="agent-1")
    result.stdout, result.output_files["note.txt"], result.stopped   # b"done\\n", b"hi\\n", "exit"
"""

from __future__ import annotations

from clearance.sandbox.backends import available_backends, doctor
from clearance.sandbox.egress import EgressPolicy, EgressProxy
from clearance.sandbox.job import Job, JobResult, Usage
from clearance.sandbox.limits import SandboxLimits
from clearance.sandbox.runner import BackendStatus, Sandbox, run_job

__all__ = [
    "BackendStatus",
    "EgressPolicy",
    "EgressProxy",
    "Job",
    "JobResult",
    "Sandbox",
    "SandboxLimits",
    "Usage",
    "available_backends",
    "doctor",
    "run_job",
]
