"""A halt issued at the gate kills the halted agent's running sandbox jobs, with no help from it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from clearance.cli.commands.core import example_policy_text
from clearance.cli.runtime import create_keys, open_runtime, store_url_for
from clearance.control.operator import Operator
from clearance.control.scope import Scope
from clearance.gate.config import GateConfig
from clearance.policy import load_policy
from clearance.sandbox import Job, JobResult, Sandbox, SandboxLimits
from clearance.store import open_store

pytestmark = pytest.mark.sandbox


def test_halt_kills_the_agents_running_job_and_reports_it(tmp_path: Path, sandbox: Sandbox) -> None:
    data = tmp_path / ".clearance"
    create_keys(data, GateConfig().deployment)
    open_store(store_url_for(data, None)).close()
    runtime = open_runtime(data, require_policy=False)
    try:
        runtime.gate.activate(load_policy(example_policy_text()), by="test")
        results: dict[str, JobResult] = {}

        def hostile_job(owner: str) -> None:
            results[owner] = runtime.sandbox.run(
                Job(kind="python", code="import time\nwhile True: time.sleep(1)"),
                SandboxLimits(wall_seconds=25),
                owner=owner,
            )

        threads = [threading.Thread(target=hostile_job, args=(o,)) for o in ("rogue", "bystander")]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 15
        while len(runtime.sandbox.running_jobs()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(runtime.sandbox.running_jobs().values()) == ["bystander", "rogue"]

        report = runtime.control.killswitch.halt(
            Scope.agent("rogue"),
            operator=Operator("op-admin", roles=frozenset({"admin"})),
            reason="drill",
            now=runtime.gate.clock.now(),
        )
        threads[0].join(timeout=15)
        assert results["rogue"].stopped == "killed"
        assert {e.hook: e.count for e in report.effects}.get("sandbox.killed") == 1
        assert list(runtime.sandbox.running_jobs().values()) == ["bystander"]
        runtime.sandbox.kill_owner("bystander")
        threads[1].join(timeout=15)
    finally:
        runtime.close()
