"""Attack: the whole store is restored from an older copy (rolled back below the saved state)."""

from __future__ import annotations

import shutil
from pathlib import Path

from clearance.audit.testing import decision_fields, sample_store
from clearance.audit.verify.verify import main


def test_restored_old_copy_is_detected_with_state(tmp_path: Path) -> None:
    store = sample_store(tmp_path / "data", entries=4)
    old_copy = tmp_path / "old.db"
    shutil.copy(store.db, old_copy)
    log, log_storage = store.open_log()
    for i in range(3):
        log.append("decision", decision_fields(100 + i), None)
    log.checkpoint_now()
    log.close()
    log_storage.close()
    state = tmp_path / "state.json"
    assert main(["log", str(store.db), "--key", store.vkey, "--state", str(state)]) == 0
    for suffix in ("-wal", "-shm"):
        Path(str(store.db) + suffix).unlink(missing_ok=True)
    shutil.copy(old_copy, store.db)
    # Without the state file the old copy is self-consistent; with it, the rollback shows.
    assert main(["log", str(store.db), "--key", store.vkey]) == 0
    assert main(["log", str(store.db), "--key", store.vkey, "--state", str(state)]) == 1
