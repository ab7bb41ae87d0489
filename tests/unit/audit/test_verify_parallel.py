"""Worker processes (``--jobs``) must report exactly what one process reports, attack by attack.

The batch size is lowered so that a small store spans many batches, several of them in flight at
once: a tampered entry then sits in the middle of a batch, at a batch boundary, or in a batch a
worker finished before the replay reached the break.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from clearance.audit.testing import SampleStore, sample_store
from clearance.audit.verify import shard
from clearance.audit.verify.verify import main, verify_log
from clearance.formats.note import VerifierKey

ATTACKS = {
    "none": [],
    "edited payload": [
        "UPDATE audit_payload SET body = CAST(replace(CAST(body AS TEXT), 'refund', 'REFUND') AS"
        " BLOB) WHERE idx = 13"
    ],
    "edited header": [
        "UPDATE audit_entry SET header = CAST(replace(CAST(header AS TEXT), 'PERMIT', 'DENIED')"
        " AS BLOB) WHERE idx = 7"
    ],
    "deleted entry at a batch boundary": ["DELETE FROM audit_entry WHERE idx = 14"],
    "premature deletion": ["DELETE FROM audit_payload WHERE idx = 20"],
    "truncated": ["DELETE FROM audit_entry WHERE idx >= 25"],
    "text where a blob belongs": ["UPDATE audit_entry SET leaf_hash = 'x' WHERE idx = 22"],
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> SampleStore:
    return sample_store(tmp_path_factory.mktemp("pristine"), entries=30)


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_workers_report_what_one_process_reports(
    tmp_path: Path, pristine: SampleStore, attack: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shard, "_BATCH", 7)
    db = tmp_path / "clearance.db"
    shutil.copy(pristine.db, db)
    conn = sqlite3.connect(db)
    for sql in ATTACKS[attack]:
        conn.execute(sql)
    conn.commit()
    conn.close()
    keys = [VerifierKey.parse(pristine.vkey)]
    one = verify_log(db, keys)
    two = verify_log(db, keys, jobs=2)
    assert two.findings == one.findings
    assert two.entries_checked == one.entries_checked
    assert two.state == one.state
    assert one.exit_code == (0 if attack == "none" else 1)


@pytest.mark.parametrize("jobs", ["0", "-1", "two", "65"])
def test_a_bad_jobs_value_is_unusable_input(pristine: SampleStore, jobs: str) -> None:
    assert main(["log", str(pristine.db), "--key", pristine.vkey, "--jobs", jobs]) == 2
