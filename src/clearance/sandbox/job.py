"""What a sandboxed job is, and what came back from running it.

A :class:`Job` is one of three kinds: ``python`` (``code`` is a Python program run by the host's
system interpreter), ``shell`` (``code`` is a ``/bin/sh -c`` script) or ``argv`` (an explicit
command line). ``files`` are placed read-only under ``/job/in``; the job may write only to
``/job/out`` (its working directory) and a private ``/tmp``. Files the job leaves in
``/job/out`` come back in :attr:`JobResult.output_files`.

::

    from clearance.sandbox.job import Job
    job = Job(kind="python", code="print(open('/job/in/x.txt').read())", files={"x.txt": b"hi"})
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

JobKind = Literal["python", "shell", "argv"]
StopReason = Literal["exit", "timeout", "output-cap", "memory-cap", "killed"]

IN_DIR = "/job/in"
OUT_DIR = "/job/out"
PYTHON = "/usr/bin/python3"
SHELL = "/bin/sh"
_MAX_INPUT_BYTES = 64 * 1024 * 1024


def check_relative_path(name: str) -> str:
    """Return ``name`` if it is a safe relative path inside a job directory, else raise.

    Input names come from the caller and output names from the job itself; neither may climb out
    of its directory or name a hidden control file.
    """
    parts = name.split("/")
    if (
        not name
        or name.startswith("/")
        or "\x00" in name
        or any(p in ("", ".", "..") for p in parts)
        or len(name) > 1024
    ):
        raise ValueError(
            f"{name!r} is not a plain relative path (no '..', '.', '//', or '/' start)"
        )
    return name


class Job(BaseModel):
    """One unit of code to run in a fresh sandbox."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: JobKind
    code: str | None = None
    argv: tuple[str, ...] | None = None
    files: dict[str, bytes] = Field(default_factory=dict)
    stdin: bytes = b""

    @field_validator("files")
    @classmethod
    def _files_are_relative(cls, files: dict[str, bytes]) -> dict[str, bytes]:
        for name in files:
            check_relative_path(name)
        if sum(len(v) for v in files.values()) > _MAX_INPUT_BYTES:
            raise ValueError(f"input files exceed {_MAX_INPUT_BYTES} bytes in total")
        return files

    @model_validator(mode="after")
    def _shape_matches_kind(self) -> Job:
        if self.kind == "argv":
            if not self.argv or self.code is not None:
                raise ValueError("an argv job needs a non-empty argv and no code")
        elif self.code is None or self.argv is not None:
            raise ValueError(f"a {self.kind} job needs code and no argv")
        return self

    def command(self, in_dir: str = IN_DIR) -> tuple[str, ...]:
        """The command line as seen inside the sandbox, whose input directory is ``in_dir``."""
        if self.kind == "python":
            return (PYTHON, f"{in_dir}/.main.py")
        if self.kind == "shell":
            return (SHELL, "-c", self.code or "")
        return self.argv or ()

    def input_files(self) -> dict[str, bytes]:
        """Every file to place under ``/job/in``, including the program of a python job."""
        files = dict(self.files)
        if self.kind == "python":
            files[".main.py"] = (self.code or "").encode()
        return files


class Usage(BaseModel):
    """What the job consumed, measured by the gate (not reported by the job)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    wall_seconds: float
    cpu_seconds: float
    max_rss_bytes: int
    memory_peak_bytes: int | None = None
    output_bytes: int
    oom_kills: int = 0


class JobResult(BaseModel):
    """The outcome of one job. ``stopped`` says why it ended; ``exit_code`` is negative for a signal."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str
    exit_code: int
    stdout: bytes
    stderr: bytes
    output_files: dict[str, bytes]
    usage: Usage
    stopped: StopReason
    backend: str
