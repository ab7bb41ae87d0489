"""Overhead of the Claude Agent SDK adapter per tool call, against the same call ungated (one run).

Run from the repository root with ``python -m bench.claude_sdk``. Every call goes through the
SDK's own control protocol (``ClaudeSDKClient`` with the example's scripted CLI transport: the
PreToolUse hook, the ``can_use_tool`` request, the tool, the PostToolUse hook), so the baseline
pays the same SDK plumbing with a callback that allows everything and no hooks. The gate is real:
the policy imported from ``examples/claude-agent-sdk/settings.json``, SQLite store, audit shard
with signed receipts; then the same gate over the sidecar (uvicorn on loopback, agent key). Each
timed call checks that the tool ran. Figures go into docs, never into assertions.
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any

import anyio
from claude_agent_sdk import (
    ClaudeAgentOptions,
    ClaudeSDKClient,
    PermissionResultAllow,
    ToolPermissionContext,
)
from tests.integration.integrations.kit import AGENT, init_data_dir
from tests.integration.integrations.served import serve_sidecar

from clearance.cli.runtime import open_runtime
from clearance.gate.clock import SystemClock
from clearance.integrations.claude_permissions import translate
from clearance.integrations.claude_sdk import ClaudeGate
from clearance.integrations.mapping import SessionHandle
from clearance.integrations.sidecar import SidecarTransport
from clearance.integrations.transport import InProcessTransport

RUNS = 300
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "claude-agent-sdk" / "run.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("claude_sdk_example", EXAMPLE)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {EXAMPLE}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def allow_all(
    tool_name: str, tool_input: dict[str, Any], context: ToolPermissionContext
) -> PermissionResultAllow:
    return PermissionResultAllow(updated_input=tool_input)


def shell(tool_input: dict[str, Any]) -> dict[str, Any]:
    return {"stdout": tool_input["command"], "stderr": "", "interrupted": False}


async def samples(example: ModuleType, options: ClaudeAgentOptions, tag: str) -> list[float]:
    """Per-call times of RUNS tool calls on one connected client."""
    cli = example.ScriptedCLI()
    times = []
    async with ClaudeSDKClient(options, transport=cli):
        for n in range(RUNS):
            start = time.perf_counter()
            run = await cli.call_tool("Bash", {"command": "git status"}, f"{tag}-{n}", shell)
            times.append(time.perf_counter() - start)
            if not run.ran:
                raise SystemExit(f"{tag} broke: {run.reason}")
    return times


def describe(name: str, times: list[float]) -> tuple[str, float]:
    ordered = sorted(times)
    median = statistics.median(ordered)
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    return f"{name:<28} median {median * 1e6:9.1f} us   p99 {p99 * 1e6:9.1f} us", median


def main() -> int:
    example = load_example()
    settings = example.json.loads((EXAMPLE.parent / "settings.json").read_text("utf-8"))
    policy = translate(settings, source="settings.json", root=PurePosixPath("/workspace/shop"),
                       home=PurePosixPath("/home/dev")).to_yaml()  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        init_data_dir(data, policy)
        runtime = open_runtime(data, clock=SystemClock())
        try:
            s = runtime.gate.open_session(agent_id=AGENT, task="coding", environment="staging")
            session = SessionHandle(agent_id=s.agent_id, session_id=s.session_id)
            local = ClaudeGate(
                InProcessTransport(runtime.gate, approvals=runtime.approvals), session
            )
            with (
                serve_sidecar(runtime) as served,
                SidecarTransport.connect(served.base_url, api_key=served.agent_key) as over_http,
            ):
                remote = ClaudeGate(over_http, session)
                runs: dict[str, Callable[[], Awaitable[list[float]]]] = {
                    "sdk call (allow-all)": lambda: samples(
                        example, ClaudeAgentOptions(can_use_tool=allow_all), "base"),
                    "sdk call (gated)": lambda: samples(
                        example, ClaudeAgentOptions(can_use_tool=local.can_use_tool,
                                                    hooks=local.hooks()), "local"),
                    "sdk call (gated, sidecar)": lambda: samples(
                        example, ClaudeAgentOptions(can_use_tool=remote.can_use_tool,
                                                    hooks=remote.hooks()), "remote"),
                }  # fmt: skip
                results = {name: anyio.run(run) for name, run in runs.items()}
        finally:
            runtime.close()
    (name, first), *rest = results.items()
    line, base = describe(name, first)
    print(line)
    for name, times in rest:
        line, median = describe(name, times)
        print(f"{line}   x{median / base:,.1f} ungated, +{(median - base) * 1e3:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
