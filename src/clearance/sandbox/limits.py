"""Resource limits of one sandboxed job: each has a default and may be overridden by policy.

The defaults are the ones the sandbox obligation assumes when a policy names none: 30 s wall clock,
1 MB of output, 512 MiB of memory, 64 processes. Every value is validated on construction, so a
limit that reaches the runner is always one it can enforce.

::

    from clearance.sandbox.limits import SandboxLimits
    limits = SandboxLimits(wall_seconds=5, memory_bytes=256 * 1024 * 1024)
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

MIB = 1024 * 1024


class SandboxLimits(BaseModel):
    """Caps enforced on one job.

    ``memory_bytes`` and ``cpu_cores`` are enforced by the job's cgroup when the host offers one;
    without a cgroup ``memory_bytes`` falls back to a per-process ``RLIMIT_AS`` (a weaker control:
    several processes may each use that much). ``cpu_seconds``, ``file_bytes`` and ``processes``
    are rlimits and always apply. ``out_dir_bytes`` caps the writable output directory in total,
    ``tmp_bytes`` the private ``/tmp``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    wall_seconds: float = Field(default=30.0, gt=0, le=3600)
    output_bytes: int = Field(default=1_000_000, ge=1024, le=256 * MIB)
    memory_bytes: int = Field(default=512 * MIB, ge=32 * MIB, le=64 * 1024 * MIB)
    processes: int = Field(default=64, ge=4, le=4096)
    cpu_seconds: int = Field(default=30, ge=1, le=3600)
    cpu_cores: float = Field(default=1.0, gt=0, le=256)
    file_bytes: int = Field(default=64 * MIB, ge=MIB, le=16 * 1024 * MIB)
    out_dir_bytes: int = Field(default=128 * MIB, ge=MIB, le=16 * 1024 * MIB)
    tmp_bytes: int = Field(default=64 * MIB, ge=MIB, le=16 * 1024 * MIB)
    open_files: int = Field(default=256, ge=16, le=65536)

    @model_validator(mode="after")
    def _files_fit_in_out_dir(self) -> SandboxLimits:
        # INVARIANT: a single file may never be allowed to exceed the whole output directory;
        # the order of errors (EFBIG before ENOSPC) is what the docs promise.
        if self.file_bytes > self.out_dir_bytes:
            raise ValueError(
                f"file_bytes ({self.file_bytes}) must not exceed out_dir_bytes "
                f"({self.out_dir_bytes})"
            )
        return self
