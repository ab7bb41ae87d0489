"""A recorded history to run operations tools on: the FinanceApp demo story, played once live."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console

from clearance.cli.runtime import key_paths
from clearance.cli.showcase import prepare, run_live, story


@dataclass(frozen=True)
class History:
    """A closed data directory holding the story's store and audit shard."""

    data_dir: Path
    vkey: str
    injected_session: str
    transfer_session: str


@pytest.fixture(scope="package")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    data_dir = tmp_path_factory.mktemp("history") / ".clearance"
    runtime = prepare(data_dir)
    try:
        live, ok = run_live(
            runtime, Console(quiet=True), port=0, act=lambda live: story(live, auto=True, wait_s=5)
        )
        assert ok
        runtime.audit_log.checkpoint_now()
        steps = {s.act: s.decision for s in live.steps}
        injected = runtime.store.get_decision(steps["injected transfer"].decision_id)
        transfer = runtime.store.get_decision(steps["pay the invoice"].decision_id)
        assert injected is not None
        assert transfer is not None
    finally:
        runtime.close()
    return History(
        data_dir=data_dir,
        vkey=key_paths(data_dir)[2].read_text("utf-8").strip(),
        injected_session=injected.request["session_id"],
        transfer_session=transfer.request["session_id"],
    )
