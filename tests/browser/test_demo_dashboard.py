"""``clearance demo --no-auto``: the story waits for a person in the dashboard, in a real Chromium.

The demo runs as users run it (a subprocess), prints the dashboard address and a one-time operator
password, and blocks on each approval; the browser logs in, denies the call the breaker held,
approves the invoice payment, and the demo finishes with every decision as the policy prescribes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import IO, Any

import pytest

pytestmark = pytest.mark.browser

WAITING = re.compile(r"waiting up to \d+ s for you to (approve|deny) it at (\S+)")


def _lines(stream: IO[str]) -> Iterator[str]:
    for line in iter(stream.readline, ""):
        yield line.rstrip("\n")


def _until(lines: Iterator[str], pattern: re.Pattern[str], seen: list[str]) -> re.Match[str]:
    for line in lines:
        seen.append(line)
        found = pattern.search(line)
        if found:
            return found
    raise AssertionError(
        "the demo ended before printing " + pattern.pattern + "\n" + "\n".join(seen)
    )


def test_the_demo_waits_for_the_dashboard_and_finishes_after_a_person_decides(
    page: Any, tmp_path: Any
) -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "clearance", "demo", "--no-auto", "--wait", "120"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
    )
    assert demo.stdout is not None
    seen: list[str] = []
    try:
        lines = _lines(demo.stdout)
        base = _until(lines, re.compile(r"gate and dashboard: (http://\S+)/"), seen).group(1)
        password = _until(lines, re.compile(r"operator login: op-bob / (\S+)"), seen).group(1)
        verb, url = _until(lines, WAITING, seen).groups()
        assert verb == "deny"
        page.goto(f"{base}/approvals")
        page.get_by_label("User name").fill("op-bob")
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/approvals")
        held = page.locator(f"#approval-{url.rsplit('/', 1)[1]}")
        assert "fetch_url" in held.inner_text()
        held.get_by_role("button", name="Deny").click()
        page.wait_for_url("**/approvals?msg=*")

        verb, url = _until(lines, WAITING, seen).groups()
        assert verb == "approve"
        page.goto(f"{base}/approvals")
        payment = page.locator(f"#approval-{url.rsplit('/', 1)[1]}")
        assert "invoice #4471 is due today" in payment.inner_text()  # the agent's reasoning
        payment.get_by_role("button", name="Approve").click()
        page.wait_for_url("**/approvals?msg=*")
        seen.extend(lines)
        assert demo.wait(timeout=60) == 0, "\n".join(seen)
    finally:
        if demo.poll() is None:
            demo.kill()
    out = "\n".join(seen)
    assert "the agent polls its request: denied" in out
    assert "every decision matched the policy and the evidence verified" in out
