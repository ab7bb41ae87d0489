"""The seccomp program and the bwrap command line have the properties the docs promise."""

from __future__ import annotations

import itertools
import platform
import struct
from pathlib import Path

import pytest

from clearance.errors import SandboxError
from clearance.sandbox import SandboxLimits, bwrap, seccomp
from clearance.sandbox.launch import LaunchSpec


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86_64 syscall table only")
def test_filter_checks_the_architecture_first_and_allows_last() -> None:
    program = seccomp.build_filter()
    assert len(program) % 8 == 0
    code, _, _, k = struct.unpack("=HBBI", program[:8])
    assert (code, k) == (0x20, 4)  # load seccomp_data.arch
    _, _, _, arch = struct.unpack("=HBBI", program[8:16])
    assert arch == 0xC000003E
    assert struct.unpack("=HBBI", program[-8:]) == (0x06, 0, 0, 0x7FFF0000)


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86_64 syscall table only")
def test_unix_only_filter_differs_from_the_network_one() -> None:
    assert seccomp.build_filter(seccomp.UNIX_ONLY) != seccomp.build_filter()


def test_unknown_architecture_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "machine", lambda: "riscv64")
    with pytest.raises(SandboxError, match="riscv64"):
        seccomp.build_filter()


def spec(egress: Path | None) -> LaunchSpec:
    return LaunchSpec(
        job_dir=Path("/srv/jobs/j1"), etc_dir=Path("/srv/etc"), command=("/bin/true",), limits=SandboxLimits(),
        seccomp_fd=3, launcher=Path("/srv/launcher"), python="/usr/bin/python3",
        in_dir="/job/in", out_dir="/job/out", egress_socket=egress,
    )  # fmt: skip


def test_bwrap_never_binds_the_host_root_and_drops_everything() -> None:
    argv = bwrap.argv("bwrap", spec(None))
    pairs = list(itertools.pairwise(argv))
    assert ("--ro-bind", "/") not in pairs
    assert ("--bind", "/") not in pairs
    for flag in ("--unshare-net", "--unshare-pid", "--disable-userns", "--new-session",
                 "--clearenv", "--die-with-parent"):  # fmt: skip
        assert flag in argv
    assert ("--remount-ro", "/") in pairs
    assert ("--seccomp", "3") in pairs
    assert argv[-2:] == ["--", "/bin/true"]
    assert "HTTP_PROXY" not in argv


def test_bwrap_with_egress_starts_the_bridge_and_sets_the_proxy() -> None:
    argv = bwrap.argv("bwrap", spec(Path("/srv/jobs/j1/egress.sock")))
    assert ("--bind", "/srv/jobs/j1/egress.sock") in itertools.pairwise(argv)
    assert "HTTPS_PROXY" in argv
    tail = argv[argv.index("--") + 1 :]
    assert tail[:5] == ["/usr/bin/python3", "-I", "-S", "-B", "-c"]
    assert "sys.path.insert(0, '/run/clearance-launcher')" in tail[5]
    assert ("/srv/launcher", "/run/clearance-launcher") in itertools.pairwise(argv)
    assert tail[6] == "bwrap"
    assert tail[-2:] == ["--", "/bin/true"]
