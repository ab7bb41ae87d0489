"""The parts shared by every job are made once, cannot be changed, and are repaired if tampered."""

from __future__ import annotations

import importlib.util
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from clearance.sandbox import launcher
from clearance.sandbox import skeleton as skeleton_module
from clearance.sandbox.launch import ETC_ALLOWLIST, SYNTHETIC_ETC, LaunchSpec
from clearance.sandbox.limits import SandboxLimits
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


def test_prepare_rebuilds_a_tampered_etc_and_launcher(tmp_path: Path) -> None:
    etc = Skeleton.prepare(tmp_path).etc_dir
    passwd = etc / "passwd"
    passwd.write_text("root::0:0::/:/bin/sh\n")
    passwd.chmod(0o666)
    (etc / "shadow").write_text("root:$6$planted\n")
    (tmp_path / "launcher" / "clearance_launcher.py").write_text("import os; os.system('id')\n")
    skeleton = Skeleton.prepare(tmp_path)
    assert skeleton.etc_dir == etc  # same content wanted, so same name, rebuilt
    assert passwd.read_text() == SYNTHETIC_ETC["passwd"]
    assert passwd.stat().st_mode & 0o777 == 0o644
    assert not (etc / "shadow").exists()
    module = skeleton.launcher / "clearance_launcher.py"
    assert module.read_bytes() == Path(launcher.__file__).read_bytes()


def test_etc_holds_the_allowlisted_host_files_as_a_bind_would_show_them(tmp_path: Path) -> None:
    etc = Skeleton.prepare(tmp_path).etc_dir
    names = {p.relative_to(etc).parts[0] for p in etc.iterdir()}
    allowed = {p.removeprefix("/etc/").split("/")[0] for p in ETC_ALLOWLIST} | set(SYNTHETIC_ETC)
    assert names <= allowed  # nothing else of the host's /etc
    for host in map(Path, ETC_ALLOWLIST):
        copy = etc / host.relative_to("/etc")
        if host.is_file():  # a top-level symlink (e.g. localtime) is followed, as a bind does
            assert not copy.is_symlink()
            assert copy.read_bytes() == host.read_bytes()
        elif host.is_dir():
            for entry in host.iterdir():
                if entry.is_symlink():
                    assert os.readlink(copy / entry.name) == os.readlink(entry)
        else:
            assert not copy.exists()
    for name, text in SYNTHETIC_ETC.items():
        assert (etc / name).read_text() == text  # never the host's passwd, hosts...


def test_a_changed_host_file_makes_a_new_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = Skeleton.prepare(tmp_path).etc_dir
    monkeypatch.setitem(SYNTHETIC_ETC, "hostname", "renamed\n")
    second = Skeleton.prepare(tmp_path).etc_dir
    assert second != first
    assert (second / "hostname").read_text() == "renamed\n"
    assert (first / "hostname").read_text() == "sandbox\n"  # a running job's /etc is untouched


def test_the_launcher_runs_from_its_compiled_bytecode(tmp_path: Path) -> None:
    skeleton = Skeleton.prepare(tmp_path)
    spec = LaunchSpec(
        job_dir=tmp_path, etc_dir=skeleton.etc_dir, command=("/bin/true",), limits=SandboxLimits(),
        seccomp_fd=-1, launcher=skeleton.launcher, python=sys.executable, in_dir="/job/in",
        out_dir="/job/out", egress_socket=None,
    )  # fmt: skip
    argv = spec.launcher_command("check", "{}", str(skeleton.launcher))
    argv.insert(1, "-v")  # the import system says where each module's code came from
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 125  # "check" is no mode: the launcher refuses, as it must
    assert "clearance sandbox launcher: unknown mode 'check'" in done.stderr
    cached = importlib.util.cache_from_source(str(skeleton.launcher / "clearance_launcher.py"))
    assert f"code object from '{cached}'" in done.stderr


def test_host_files_other_users_cannot_read_are_not_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = tmp_path / "host-certs"
    (host / "closed").mkdir(parents=True)
    (host / "public.pem").write_text("public")
    (host / "private.key").write_text("root only")
    (host / "private.key").chmod(0o600)
    (host / "closed" / "inner.pem").write_text("behind a closed directory")
    (host / "closed").chmod(0o700)
    monkeypatch.setattr(skeleton_module, "ETC_ALLOWLIST", (str(host),))
    tree = skeleton_module.etc_tree()
    name = str(host).removeprefix("/etc/")
    assert tree[f"{name}/public.pem"] == ("file", b"public")
    assert f"{name}/private.key" not in tree  # a job's uid could not read it on the host
    assert not [rel for rel in tree if "closed" in rel]
