"""The reliability suite: every test here is marked ``reliability`` and bounded in time.

``--soak`` (or ``CLEARANCE_SOAK=1``) turns on the long mode: more crash iterations, more fuzz
examples, a longer load run. The bounded default keeps the whole directory well under CI limits.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.reliability.kit import soak_requested

HERE = Path(__file__).parent


SOAK_TIMEOUT_S = 4 * 3600


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    soaking = soak_requested(bool(config.getoption("--soak")))
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.reliability)
            if soaking:  # the per-test timeout is sized for the bounded mode
                item.add_marker(pytest.mark.timeout(SOAK_TIMEOUT_S))


@pytest.fixture(scope="session")
def soak(request: pytest.FixtureRequest) -> bool:
    """True in soak mode."""
    return soak_requested(bool(request.config.getoption("--soak")))
