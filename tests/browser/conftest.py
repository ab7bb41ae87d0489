"""Playwright driving Debian's Chromium against the composed service on 127.0.0.1.

The browser is ``/usr/bin/chromium`` (``scripts/install-browser-deps``); Playwright's own browser
download is never used. Missing Chromium or Playwright skips these tests locally and fails them
under ``CI=true``. A failing test leaves a screenshot in ``test-artifacts/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.server.conftest import (  # noqa: F401 - fixtures shared with the HTTP tests
    PASSWORD,
    World,
    full_world,
    runtime,
    settings,
)

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path("test-artifacts")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (required because CI=true)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")  # sync_playwright keeps an event loop running until it exits
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _unavailable("Chromium is not installed; run scripts/install-browser-deps")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context()
    context.set_default_timeout(10_000)
    opened = context.new_page()
    yield opened
    if request.node.stash.get(_FAILED, False):
        ARTIFACTS.mkdir(exist_ok=True)
        opened.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


@pytest.fixture
def log_in(page: Any, full_world: World):  # type: ignore[no-untyped-def]  # noqa: F811
    def go(username: str) -> None:
        page.goto(f"{full_world.base_url}/approvals")
        page.get_by_label("User name").fill(username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/approvals")

    return go
