"""The parts shared by every job are made once, cannot be changed, and are repaired if tampered."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import pytest

from clearance.sandbox import launcher
from clearance.sandbox.launch import SYNTHETIC_ETC
from clearance.sandbox.seccomp import NETWORK_FAMILIES, UNIX_ONLY, build_filter
from clearance.sandbox.skeleton import Skeleton

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64", reason="x86_64 syscall table only")


def test_each_job_gets_its_own_read_only_view_of_one_sealed_program(tmp_path: Path) -> None:
    skeleton = Skeleton.prepare(tmp_path)
    first = skeleton.open_filter(NETWORK_FAMILIES)
    second = skeleton.open_filter(NETWORK_FAMILIES)
    try:
        program = build_filter(NETWORK_FAMILIES)
        assert os.read(first, 1 << 16) == program
        assert os.read(second, 1 << 16) == program  # its own offset, not the first one's
        with pytest.raises(OSError):
            os.write(first, b"\x06\x00\x00\x00\x00\x00\xff\x7f")  # opened read-only
        writable = os.open(f"/proc/self/fd/{first}", os.O_RDWR)
        try:
            with pytest.raises(PermissionError):  # the seal forbids writing, even opened rw
                os.pwrite(writable, b"\x06\x00\x00\x00\x00\x00\xff\x7f", 0)
            with pytest.raises(PermissionError):
                os.ftruncate(writable, 8)
        finally:
            os.close(writable)
        assert os.pread(second, 1 << 16, 0) == program
    finally:
        os.close(first)
        os.close(second)


def test_the_degraded_program_is_a_separate_sealed_memfd(tmp_path: Path) -> None:
    skeleton = Skeleton.prepare(tmp_path)
    fd = skeleton.open_filter(UNIX_ONLY)
    try:
        assert os.read(fd, 1 << 16) == build_filter(UNIX_ONLY)
    finally:
        os.close(fd)


def test_prepare_restores_tampered_shared_files(tmp_path: Path) -> None:
    Skeleton.prepare(tmp_path)
    passwd = tmp_path / "etc" / "passwd"
    passwd.write_text("root::0:0::/:/bin/sh\n")
    passwd.chmod(0o666)
    (tmp_path / "launcher.py").write_text("import os; os.system('id')\n")
    skeleton = Skeleton.prepare(tmp_path)
    assert passwd.read_text() == SYNTHETIC_ETC["passwd"]
    assert passwd.stat().st_mode & 0o777 == 0o644
    for name in SYNTHETIC_ETC:
        assert (skeleton.etc_dir / name).stat().st_mode & 0o022 == 0
    assert skeleton.launcher.read_bytes() == Path(launcher.__file__).read_bytes()
