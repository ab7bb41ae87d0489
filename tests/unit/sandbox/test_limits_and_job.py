"""Typed limits and jobs reject what the runner could not enforce or would misread."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from clearance.sandbox import Job, SandboxLimits


def test_defaults_are_the_documented_caps() -> None:
    limits = SandboxLimits()
    assert limits.wall_seconds == 30
    assert limits.output_bytes == 1_000_000
    assert limits.memory_bytes == 512 * 1024 * 1024
    assert limits.processes == 64


@pytest.mark.parametrize(
    "overrides",
    [
        {"wall_seconds": 0},
        {"memory_bytes": 1024},
        {"processes": 1},
        {"file_bytes": 200 * 1024 * 1024, "out_dir_bytes": 100 * 1024 * 1024},
        {"unknown_cap": 1},
    ],
)
def test_invalid_limits_are_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SandboxLimits(**overrides)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", "a//b", "a/./b", "", "x\x00y"])
def test_input_file_names_cannot_leave_the_input_directory(name: str) -> None:
    with pytest.raises(ValidationError, match="plain relative path"):
        Job(kind="shell", code="true", files={name: b""})


def test_job_shape_must_match_its_kind() -> None:
    with pytest.raises(ValidationError):
        Job(kind="argv", code="print(1)")
    with pytest.raises(ValidationError):
        Job(kind="python", argv=("python3",))


def test_python_job_runs_its_code_from_the_input_directory() -> None:
    job = Job(kind="python", code="print(1)", files={"data.csv": b"x"})
    assert job.command() == ("/usr/bin/python3", "/job/in/.main.py")
    assert job.input_files() == {"data.csv": b"x", ".main.py": b"print(1)"}
