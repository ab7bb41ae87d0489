"""Run one job in a fresh sandbox and supervise it until it ends, then destroy everything.

The lifecycle of a job, on the gate side:

1. claim a per-job host uid (when the gate is root), lay out the job directory, mount the
   size-capped output tmpfs, create the job's cgroup, start the egress proxy if granted;
2. spawn the backend through a pure exec chain (no ``preexec_fn``, which is unsafe in a threaded
   gate): ``sh`` writes its own pid into the cgroup, ``prlimit`` lowers the rlimits, ``setpriv``
   drops to the job uid with a parent-death signal, then the backend starts;
3. read stdout and stderr against the wall-clock deadline and the output cap; kill the whole
   job (process group, cgroup, and with the sandbox's pid 1 its pid namespace) at either;
4. before returning: kill what is left and wait until the job's cgroup is empty, stop the
   proxy, read ``out/``. No process of the job survives :meth:`Sandbox.run`;
5. after returning, on the :class:`~clearance.sandbox.reaper.Reaper`'s thread: remove the
   cgroup, unmount ``out/``, delete the job directory, release the uid (last, so no later job
   gets the uid while the directory exists). :meth:`Sandbox.drain` waits for that.

The parts every job shares (synthetic ``/etc``, launcher, sealed seccomp programs) are prepared
once per :class:`Sandbox` by :class:`~clearance.sandbox.skeleton.Skeleton`; every job still gets
its own fresh directory, output tmpfs, ``/tmp``, uid and cgroup.

**Fail closed.** :meth:`Sandbox.run` first makes sure an acceptable backend works on this host
(by running a trivial job through it); if none does it raises :class:`SandboxError` naming
why, and never runs the job some other way. The Landlock-only backend is used only with
``allow_degraded=True``.

::

    from clearance.sandbox import Job, Sandbox, SandboxLimits
    result = Sandbox().run(Job(kind="python", code="print(6 * 7)"), SandboxLimits(wall_seconds=5))
    assert result.stdout == b"42\\n" and result.stopped == "exit"

    with Sandbox() as sandbox:               # close() waits until every job is torn down
        sandbox.run(Job(kind="shell", code="echo hi"))
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from clearance.errors import SandboxError
from clearance.model.ids import new_ulid
from clearance.sandbox import bwrap, landlock, unshare
from clearance.sandbox.cgroups import CgroupLayout, JobCgroup, probe
from clearance.sandbox.egress import (
    ConnectionHook,
    EgressPolicy,
    EgressProxy,
    Resolver,
    system_resolver,
)
from clearance.sandbox.job import IN_DIR, OUT_DIR, PYTHON, Job, JobResult, StopReason, Usage
from clearance.sandbox.jobdir import JobDir, prepare_jobs_root
from clearance.sandbox.launch import LaunchSpec
from clearance.sandbox.launcher import landlock_abi
from clearance.sandbox.limits import SandboxLimits
from clearance.sandbox.reaper import Reaper
from clearance.sandbox.seccomp import NETWORK_FAMILIES, UNIX_ONLY
from clearance.sandbox.skeleton import Skeleton

BackendName = Literal["auto", "bwrap", "unshare", "landlock"]
PREFERRED: tuple[str, ...] = (bwrap.NAME, unshare.NAME)
DEGRADED = landlock.NAME
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_LAUNCHER_FAILED = b"clearance sandbox launcher:"
_EXIT_GRACE = 0.5
_EMPTY_WAIT = 2.0  # seconds for SIGKILLed processes to leave the cgroup
_REUSE_WAIT = 10.0  # seconds a reused job id waits for the previous job's teardown


@dataclass(frozen=True)
class BackendStatus:
    """Whether a backend works on this host, and if not, why."""

    name: str
    ok: bool
    reason: str


@dataclass
class _Running:
    """A job being supervised; what :meth:`Sandbox.kill_owner` acts on."""

    job_id: str
    owner: str | None
    process: subprocess.Popen[bytes]
    cgroup: JobCgroup | None
    stop: StopReason | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def kill(self, reason: StopReason) -> None:
        """Record why (the first reason wins) and kill the job's every process."""
        with self.lock:
            if self.stop is None:
                self.stop = reason
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.cgroup is not None:
            self.cgroup.kill()


class _UidPool:
    """Per-job host uids: claimed with an atomic ``mkdir`` so two gates never share one."""

    def __init__(self, directory: Path, base: int, count: int) -> None:
        self.directory = directory
        self.base = base
        self.count = count
        self._next = 0
        self._lock = threading.Lock()

    def claim(self) -> int:
        with self._lock:
            for _ in range(self.count):
                uid = self.base + self._next
                self._next = (self._next + 1) % self.count
                if self._try(uid):
                    return uid
        raise SandboxError(f"all {self.count} sandbox uids from {self.base} are in use")

    def _try(self, uid: int) -> bool:
        claim = self.directory / str(uid)
        try:
            claim.mkdir(mode=0o700)
        except FileExistsError:
            try:
                holder = int((claim / "pid").read_text())
                os.kill(holder, 0)
            except (OSError, ValueError):
                shutil.rmtree(claim, ignore_errors=True)  # the claiming gate is gone
                return self._try(uid) if not claim.exists() else False
            return False
        (claim / "pid").write_text(str(os.getpid()))
        return True

    def release(self, uid: int) -> None:
        shutil.rmtree(self.directory / str(uid), ignore_errors=True)


class Sandbox:
    """Runs jobs in sandboxes of one backend, chosen once per instance and checked for real.

    Thread-safe: several threads may call :meth:`run` at once; :meth:`kill_owner` may be called
    from any thread while jobs run. Finished jobs are torn down in the background by
    :attr:`reaper`; :meth:`drain` or :meth:`close` (or leaving a ``with`` block) waits for that.
    """

    def __init__(
        self,
        backend: BackendName = "auto",
        *,
        allow_degraded: bool = False,
        work_dir: Path | None = None,
        resolver: Resolver = system_resolver,
        uid_base: int = 200_000,
        uid_count: int = 10_000,
        python: str = PYTHON,
    ) -> None:
        if backend == DEGRADED and not allow_degraded:
            raise SandboxError(
                "the landlock backend is degraded (host processes stay visible)",
                hint="pass allow_degraded=True only if policy explicitly allows it",
            )
        self.requested = backend
        self.allow_degraded = allow_degraded
        self.is_root = os.geteuid() == 0
        default_dir = Path(tempfile.gettempdir()) / f"clearance-sandbox-{os.geteuid()}"
        self.work_dir = work_dir or default_dir
        self._resolver = resolver
        self._python = python
        self._uid_base = uid_base
        self._uid_count = uid_count
        self._uids: _UidPool | None = None
        self._backend: str | None = None
        self._select_lock = threading.Lock()
        self._running: dict[str, _Running] = {}
        self._running_lock = threading.Lock()
        self._cgroups: tuple[CgroupLayout | None, str] | None = None
        self._skeleton: Skeleton | None = None
        self._prepare_lock = threading.Lock()
        self._binaries: dict[str, str | None] = {}
        self.reaper = Reaper()

    # ------------------------------------------------------------------ public API

    @property
    def backend(self) -> str:
        """The backend in use, selecting (and checking) it on first use.

        Raises:
            SandboxError: no acceptable backend works here; the message lists why each failed.
        """
        with self._select_lock:
            if self._backend is None:
                self._backend = self._select()
            return self._backend

    def run(
        self,
        job: Job,
        limits: SandboxLimits | None = None,
        egress: EgressPolicy | None = None,
        *,
        job_id: str | None = None,
        owner: str | None = None,
        on_connection: ConnectionHook | None = None,
    ) -> JobResult:
        """Run ``job`` in a fresh sandbox and return what happened.

        ``egress`` grants network access through a per-job allowlisting proxy; without it the job
        has no network at all. ``owner`` (the agent id) is what :meth:`kill_owner` matches.
        ``on_connection`` receives one ``egress.open`` and one ``egress.close`` event per proxied
        connection; if it raises on ``egress.open`` the connection is refused.

        Raises:
            SandboxError: the job could not be run safely (no working backend, a bad job id, a
                setup step failed). The job did not run.
        """
        backend = self.backend
        return self._execute(backend, job, limits or SandboxLimits(), egress, job_id, owner,
                             on_connection)  # fmt: skip

    def drain(self, timeout: float | None = None) -> None:
        """Wait until every finished job has been torn down (directory, mounts, cgroup, uid).

        Raises:
            SandboxError: a teardown failed or did not finish within ``timeout`` seconds.
        """
        self.reaper.drain(timeout)

    def close(self) -> None:
        """Wait for pending teardowns (see :meth:`drain`); the instance stays usable."""
        self.drain()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def kill_owner(self, owner: str) -> list[str]:
        """Kill every running job of ``owner`` (the whole process tree and cgroup of each).

        Returns the ids of the jobs that were killed; their results report ``stopped="killed"``.
        """
        with self._running_lock:
            victims = [r for r in self._running.values() if r.owner == owner]
        for running in victims:
            running.kill("killed")
        return [r.job_id for r in victims]

    def running_jobs(self) -> dict[str, str | None]:
        """Job id to owner of every job running now."""
        with self._running_lock:
            return {r.job_id: r.owner for r in self._running.values()}

    def check(self, name: str) -> BackendStatus:
        """Find out whether backend ``name`` works here by running a trivial job through it."""
        reason = self._requirements(name)
        if reason:
            return BackendStatus(name, ok=False, reason=reason)
        probe_job = Job(kind="argv", argv=("/bin/sh", "-c", "exit 0"))
        try:
            result = self._execute(name, probe_job, SandboxLimits(wall_seconds=15), None, None,
                                   None, None)  # fmt: skip
        except SandboxError as exc:
            return BackendStatus(name, ok=False, reason=str(exc))
        if result.exit_code != 0:
            detail = result.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["?"]
            return BackendStatus(
                name, ok=False, reason=f"a trivial job exited {result.exit_code}: {detail[0]}"
            )
        return BackendStatus(name, ok=True, reason=self._describe(name))

    # ------------------------------------------------------------------ backend selection

    def _select(self) -> str:
        names: tuple[str, ...]
        if self.requested == "auto":
            names = (*PREFERRED, DEGRADED) if self.allow_degraded else PREFERRED
        else:
            names = (self.requested,)
        failures = []
        for name in names:
            status = self.check(name)
            if status.ok:
                return name
            failures.append(f"{name}: {status.reason}")
        raise SandboxError(
            "no sandbox backend works on this host, so the job is refused; " + "; ".join(failures),
            hint="install bubblewrap (scripts/install-system-deps) and allow user namespaces",
        )

    def _requirements(self, name: str) -> str | None:
        """Cheap static checks; a non-empty answer is why ``name`` cannot work here."""
        if name == bwrap.NAME:
            return (
                None if self._binary("bwrap") else "bwrap is not installed (apt install bubblewrap)"
            )
        if name == unshare.NAME:
            return None if self._binary("unshare") else "util-linux unshare is not installed"
        if name == DEGRADED:
            if not self.allow_degraded:
                return "degraded mode needs allow_degraded=True"
            abi = landlock_abi()
            return None if abi >= 6 else f"Landlock ABI {abi} is below 6 (no IPC scopes)"
        return f"unknown backend {name!r}"

    def _describe(self, name: str) -> str:
        layout, why = self._cgroup_layout()
        parts = ["works", f"per-job uid {'yes' if self.is_root else 'no (gate is not root)'}"]
        parts.append(f"cgroups {'yes (' + why + ')' if layout else 'no: ' + why}")
        if name == DEGRADED:
            parts.append("DEGRADED: host processes are visible, no egress")
        return "; ".join(parts)

    def _binary(self, name: str) -> str | None:
        """Where ``name`` is on ``PATH``, looked up once per instance."""
        if name not in self._binaries:
            self._binaries[name] = shutil.which(name)
        return self._binaries[name]

    def _cgroup_layout(self) -> tuple[CgroupLayout | None, str]:
        if self._cgroups is None:
            self._cgroups = probe()
        return self._cgroups

    # ------------------------------------------------------------------ one job

    def _prepare(self) -> Skeleton:
        """Once per instance: check the work directory, reap a crashed gate's leftovers, mount
        the jobs tmpfs (root only) and prepare the shared read-only parts."""
        with self._prepare_lock:
            if self._skeleton is None:
                try:
                    self._skeleton = self._prepare_once()
                except OSError as exc:
                    raise SandboxError(
                        f"cannot prepare the sandbox work directory {self.work_dir}: {exc}",
                        hint="the gate needs to create files and mounts there; pass work_dir=",
                    ) from exc
            return self._skeleton

    def _prepare_once(self) -> Skeleton:
        self.work_dir.mkdir(mode=0o711, exist_ok=True)
        if self.is_root:
            self._check_work_dir()
            (self.work_dir / "uids").mkdir(mode=0o711, exist_ok=True)
            self._uids = _UidPool(self.work_dir / "uids", self._uid_base, self._uid_count)
        jobs = self.work_dir / "jobs"
        jobs.mkdir(mode=0o711, exist_ok=True)
        layout, _ = self._cgroup_layout()
        for job_id in JobDir.reap_stale(jobs):  # left by a gate that crashed
            if layout is not None:
                JobCgroup.existing(layout, job_id).remove()
        prepare_jobs_root(jobs, in_memory=self.is_root)
        return Skeleton.prepare(self.work_dir)

    def _check_work_dir(self) -> None:
        """Job uids must reach the work directory, and nobody but the gate may change it."""
        info = self.work_dir.stat()
        if info.st_uid != os.geteuid() or info.st_mode & 0o022:
            raise SandboxError(
                f"work directory {self.work_dir} is not owned by the gate or is group/world writable"
            )
        for parent in [self.work_dir, *self.work_dir.parents]:
            if not parent.stat().st_mode & 0o001:
                raise SandboxError(
                    f"{parent} is not traversable by other users, so job uids cannot reach their "
                    "files",
                    hint="pass work_dir= under a directory with mode o+x (e.g. /var/lib/clearance)",
                )

    def _execute(
        self,
        backend: str,
        job: Job,
        limits: SandboxLimits,
        egress: EgressPolicy | None,
        job_id: str | None,
        owner: str | None,
        on_connection: ConnectionHook | None,
    ) -> JobResult:
        job_id = job_id or new_ulid().lower()
        if not _JOB_ID.match(job_id):
            raise SandboxError(f"job id {job_id!r} must match {_JOB_ID.pattern}")
        if egress is not None and backend == DEGRADED:
            raise SandboxError("the landlock backend cannot provide egress (no network namespace)")
        skeleton = self._prepare()
        if not self.reaper.wait(job_id, _REUSE_WAIT):
            raise SandboxError(
                f"job id {job_id!r} belongs to a job that is still being torn down",
                hint="use a fresh job id",
            )
        teardown = contextlib.ExitStack()  # run by the reaper once the job is over
        try:
            result = self._start(backend, job, limits, egress, job_id, owner, on_connection,
                                 skeleton, teardown)  # fmt: skip
        except BaseException:
            teardown.close()  # the job never ran or could not be supervised: clean up now
            raise
        self.reaper.submit(job_id, teardown.close)
        if result.exit_code == 125 and _LAUNCHER_FAILED in result.stderr:
            raise SandboxError(
                "the sandbox could not be set up: "
                + result.stderr.decode(errors="replace").strip().splitlines()[-1]
            )
        return result

    def _start(
        self,
        backend: str,
        job: Job,
        limits: SandboxLimits,
        egress: EgressPolicy | None,
        job_id: str,
        owner: str | None,
        on_connection: ConnectionHook | None,
        skeleton: Skeleton,
        teardown: contextlib.ExitStack,
    ) -> JobResult:
        """Set the job up, run it to the end; register what outlives it on ``teardown``."""
        uids = self._uids
        uid = uids.claim() if uids is not None else os.geteuid()
        if uids is not None:
            teardown.callback(uids.release, uid)
        jd = JobDir.create(
            self.work_dir / "jobs" / job_id, uid, job.input_files(), job.stdin,
            out_bytes=limits.out_dir_bytes if self.is_root else None,
            tmp_bytes=limits.tmp_bytes if self.is_root and backend == DEGRADED else None,
        )  # fmt: skip
        teardown.callback(jd.destroy)
        layout, _ = self._cgroup_layout()
        cgroup = None
        if layout is not None:
            try:
                cgroup = JobCgroup.create(layout, job_id, limits)
            except OSError as exc:
                raise SandboxError(f"cannot create the job's cgroup: {exc}") from exc
            teardown.callback(_remove_cgroup, cgroup)
        with contextlib.ExitStack() as now:  # closed before run returns
            proxy = None
            if egress is not None:
                proxy = EgressProxy(
                    egress, jd.path / "egress.sock", job_id=job_id, resolver=self._resolver,
                    on_connection=on_connection, owner_uid=uid if self.is_root else None,
                ).start()  # fmt: skip
                now.callback(proxy.close)
            seccomp_fd = skeleton.open_filter(
                UNIX_ONLY if backend == DEGRADED else NETWORK_FAMILIES
            )
            now.callback(os.close, seccomp_fd)
            in_dir, out_dir = (
                (str(jd.path / "in"), str(jd.path / "out"))
                if backend == DEGRADED
                else (IN_DIR, OUT_DIR)
            )
            spec = LaunchSpec(
                job_dir=jd.path, etc_dir=skeleton.etc_dir, command=job.command(in_dir),
                limits=limits, seccomp_fd=seccomp_fd, launcher=skeleton.launcher,
                python=self._python, in_dir=in_dir, out_dir=out_dir,
                egress_socket=proxy.socket_path if proxy else None,
            )  # fmt: skip
            argv = self._wrap(self._backend_argv(backend, spec), uid, limits, cgroup)
            return self._supervise(job_id, owner, backend, argv, spec, jd, cgroup, limits)

    def _backend_argv(self, backend: str, spec: LaunchSpec) -> list[str]:
        if backend == bwrap.NAME:
            return bwrap.argv(self._binary("bwrap") or "bwrap", spec)
        if backend == unshare.NAME:
            return unshare.argv(self._binary("unshare") or "unshare", spec)
        return landlock.argv(spec)

    def _wrap(
        self, argv: list[str], uid: int, limits: SandboxLimits, cgroup: JobCgroup | None
    ) -> list[str]:
        """The exec chain: join the cgroup, lower rlimits, drop to the job uid, start."""
        rlimits = [
            "prlimit", f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + 1}",
            f"--fsize={limits.file_bytes}", f"--nofile={limits.open_files}", "--core=0",
        ]  # fmt: skip
        if self.is_root:
            # RLIMIT_NPROC counts per uid, so it is only a per-job cap with a per-job uid
            rlimits.append(f"--nproc={limits.processes}")
        if cgroup is None:
            rlimits.append(f"--as={limits.memory_bytes}")
        chain = [*rlimits, "--"]
        if self.is_root:
            chain += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                      "--inh-caps=-all", "--bounding-set=-all", "--pdeathsig=KILL", "--"]  # fmt: skip
        chain += argv
        if cgroup is None:
            return chain
        joins = " && ".join(f"echo $$ > {shlex.quote(str(p))}" for p in cgroup.procs_files)
        return ["/bin/sh", "-c", f'{joins} && exec "$@"', "sh", *chain]

    def _supervise(
        self,
        job_id: str,
        owner: str | None,
        backend: str,
        argv: list[str],
        spec: LaunchSpec,
        jd: JobDir,
        cgroup: JobCgroup | None,
        limits: SandboxLimits,
    ) -> JobResult:
        started = time.monotonic()
        with open(jd.stdin_path, "rb") as stdin:
            try:
                process = subprocess.Popen(
                    argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    pass_fds=(spec.seccomp_fd,), start_new_session=True, cwd=jd.path,
                    env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                )  # fmt: skip
            except OSError as exc:
                raise SandboxError(f"cannot start the sandbox: {exc}") from exc
        running = _Running(job_id, owner, process, cgroup)
        with self._running_lock:
            self._running[job_id] = running
        try:
            stdout, stderr = _read_capped(
                running, started + limits.wall_seconds, limits.output_bytes
            )
            _, status, rusage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            running.kill(running.stop or "exit")  # whatever the job left behind
            if cgroup is not None and not cgroup.wait_empty(_EMPTY_WAIT):
                raise SandboxError(
                    f"processes of job {job_id} were still alive {_EMPTY_WAIT} s after SIGKILL",
                    hint="a process stuck in the kernel; its cgroup is removed when it exits",
                )
        finally:
            with self._running_lock:
                self._running.pop(job_id, None)
            if process.returncode is None:
                running.kill("killed")
                process.wait()
        wall = time.monotonic() - started
        oom = cgroup.oom_kills() if cgroup else 0
        cpu = cgroup.cpu_seconds() if cgroup else None
        stop = running.stop
        if stop == "exit" and oom and process.returncode != 0:
            stop = "memory-cap"
        usage = Usage(
            wall_seconds=round(wall, 4),
            cpu_seconds=round(cpu if cpu is not None else rusage.ru_utime + rusage.ru_stime, 4),
            max_rss_bytes=rusage.ru_maxrss * 1024,
            memory_peak_bytes=cgroup.memory_peak() if cgroup else None,
            output_bytes=len(stdout) + len(stderr),
            oom_kills=oom,
        )
        return JobResult(
            job_id=job_id, exit_code=process.returncode, stdout=stdout, stderr=stderr,
            output_files=jd.collect_outputs(limits.out_dir_bytes), usage=usage,
            stopped=stop or "exit", backend=backend,
        )  # fmt: skip


def _remove_cgroup(cgroup: JobCgroup) -> None:
    if not cgroup.remove():
        raise SandboxError(f"cgroup {sorted(map(str, cgroup.dirs.values()))} could not be removed")


def _read_capped(running: _Running, deadline: float, cap: int) -> tuple[bytes, bytes]:
    """Read both pipes until EOF, the deadline or the output cap, killing the job at either cap.

    The main process's exit is watched through a pidfd: a job that leaves a process holding
    the pipes open (possible only without a pid namespace) is killed shortly after it exits.
    """
    process = running.process
    assert process.stdout is not None
    assert process.stderr is not None
    pipes = (process.stdout, process.stderr)
    out_fd, err_fd = (p.fileno() for p in pipes)
    chunks: dict[int, list[bytes]] = {out_fd: [], err_fd: []}
    total = 0
    main_exited = False
    pidfd = os.pidfd_open(process.pid)
    sel = selectors.DefaultSelector()
    try:
        for fd in [*chunks, pidfd]:
            sel.register(fd, selectors.EVENT_READ)
        while any(fd in sel.get_map() for fd in chunks):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                running.kill("exit" if main_exited else "timeout")
                break
            for key, _ in sel.select(remaining):
                fd = key.fd
                if fd == pidfd:
                    sel.unregister(pidfd)
                    main_exited = True
                    deadline = min(deadline, time.monotonic() + _EXIT_GRACE)
                    continue
                data = os.read(fd, 65536)
                if not data:
                    sel.unregister(fd)
                    continue
                chunks[fd].append(data[: max(cap - total, 0)])
                total += len(data)
                if total > cap:
                    running.kill("output-cap")
                    break
            if total > cap:
                break
    finally:
        sel.close()
        os.close(pidfd)
        for pipe in pipes:
            pipe.close()
    return b"".join(chunks[out_fd]), b"".join(chunks[err_fd])


_DEFAULT: Sandbox | None = None
_DEFAULT_LOCK = threading.Lock()


def run_job(
    job: Job,
    limits: SandboxLimits | None = None,
    egress: EgressPolicy | None = None,
    *,
    job_id: str | None = None,
    owner: str | None = None,
    on_connection: ConnectionHook | None = None,
) -> JobResult:
    """Run ``job`` with the process-wide default :class:`Sandbox` (auto backend, no degraded mode)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = Sandbox()
        sandbox = _DEFAULT
    return sandbox.run(job, limits, egress, job_id=job_id, owner=owner, on_connection=on_connection)
