"""Attack: a prune entry with ranges that are not index pairs, to excuse a deleted payload.

Written by someone holding the audit key (or a buggy pruner), such an entry must neither crash the
verifier nor explain away a deletion: the deleted payload is still reported as premature.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from clearance.audit.testing import sample_store
from clearance.audit.verify.verify import verify_log
from clearance.formats.note import VerifierKey


@pytest.mark.parametrize(
    "ranges",
    [[["0", "9"]], [[None, 9]], [[0, [9]]], "0-9", [[0, 9, 10]], [[True, 9]]],
    ids=["strings", "null", "nested", "text", "triple", "bool"],
)
def test_malformed_prune_ranges_excuse_nothing(tmp_path: Path, ranges: object) -> None:
    store = sample_store(tmp_path, entries=5)
    log, storage = store.open_log()
    log.append("prune", {"pruned": {"ranges": ranges, "cutoff": "2099-01-01"}}, None)
    log.checkpoint_now()
    log.close()
    storage.close()
    conn = sqlite3.connect(store.db)
    conn.execute("DELETE FROM audit_payload WHERE idx = 2")
    conn.commit()
    conn.close()
    report = verify_log(tmp_path, [VerifierKey.parse(store.vkey)])
    assert report.exit_code == 1
    [finding] = [f for f in report.findings if f.severity.name == "TAMPERED"]
    assert finding.index == 2
    assert "deleted prematurely" in finding.message
