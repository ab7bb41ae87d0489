"""The reliability suite: every test here is marked ``reliability`` and bounded in time.

``--soak`` (or ``CLEARANCE_SOAK=1``) turns on the long mode: more crash iterations, more fuzz
examples, a longer load run. The bounded default keeps the whole directory well under CI limits.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.reliability.kit import soak_requested

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.reliability)


@pytest.fixture(scope="session")
def soak(request: pytest.FixtureRequest) -> bool:
    """True in soak mode."""
    return soak_requested(bool(request.config.getoption("--soak")))
