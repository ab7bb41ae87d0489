"""A recorded history to run operations tools on: the FinanceApp demo story, played once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from clearance.cli.commands.demo import Story, _approval_act, _injection_act, _prepare
from clearance.cli.runtime import key_paths


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
    runtime = _prepare(data_dir)
    try:
        story = Story(runtime)
        _injection_act(story)
        _approval_act(story, auto=True)
        runtime.audit_log.checkpoint_now()
        sessions = [s.decision for s in story.steps]
        injected = runtime.store.get_decision(sessions[0].decision_id)
        transfer = runtime.store.get_decision(sessions[2].decision_id)
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
