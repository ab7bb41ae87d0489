"""Worker processes (``--jobs``) must report exactly what one process reports, attack by attack.

Ranges are cut to 8 entries so that a small store spans many worker ranges, with checkpoints
inside them: a tampered entry then sits inside a worker's range, at its first or last entry, or
where a worker's range meets the next one (the link the parent checks from the boundary rows).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from clearance.audit.testing import SampleStore, decision_fields, decision_payload, sample_store
from clearance.audit.verify import shard
from clearance.audit.verify.parallel import WorkerPool
from clearance.audit.verify.verify import main, verify_log
from clearance.formats.note import VerifierKey

Attack = Callable[[sqlite3.Connection], None]


def _sql(*statements: str) -> Attack:
    def run(conn: sqlite3.Connection) -> None:
        for sql in statements:
            conn.execute(sql)

    return run


def _relink(idx: int) -> Attack:
    """Rewrite entry ``idx`` and store its new leaf hash: only the next entry's link shows it."""

    def run(conn: sqlite3.Connection) -> None:
        (header,) = conn.execute("SELECT header FROM audit_entry WHERE idx = ?", (idx,)).fetchone()
        edited = header.replace(b'"PERMIT"', b'"DENIED"')
        assert edited != header
        leaf = hashlib.sha256(b"\x00" + edited).digest()
        conn.execute(
            "UPDATE audit_entry SET header = ?, leaf_hash = ? WHERE idx = ?", (edited, leaf, idx)
        )

    return run


def _swap(a: int, b: int) -> Attack:
    def run(conn: sqlite3.Connection) -> None:
        (ha, la), (hb, lb) = conn.execute(
            "SELECT header, leaf_hash FROM audit_entry WHERE idx IN (?, ?) ORDER BY idx", (a, b)
        ).fetchall()
        conn.execute("UPDATE audit_entry SET header = ?, leaf_hash = ? WHERE idx = ?", (hb, lb, a))
        conn.execute("UPDATE audit_entry SET header = ?, leaf_hash = ? WHERE idx = ?", (ha, la, b))

    return run


# attack -> (what it does, the exit code one process gives)
ATTACKS: dict[str, tuple[Attack, int]] = {
    "none": (_sql(), 0),
    "edited payload inside a worker range": (
        _sql(
            "UPDATE audit_payload SET body = CAST(replace(CAST(body AS TEXT), 'refund', 'REFUND')"
            " AS BLOB) WHERE idx = 13"
        ),
        1,
    ),
    "edited header": (
        _sql(
            "UPDATE audit_entry SET header = CAST(replace(CAST(header AS TEXT), 'PERMIT', "
            "'DENIED') AS BLOB) WHERE idx = 7"
        ),
        1,
    ),
    "relinked entry inside a range": (_relink(10), 1),
    "relinked last entry of a range": (_relink(15), 1),
    "swapped across a range boundary": (_swap(15, 16), 1),
    "deleted first entry of a range": (_sql("DELETE FROM audit_entry WHERE idx = 16"), 1),
    "deleted last entry of a range": (_sql("DELETE FROM audit_entry WHERE idx = 23"), 1),
    "deleted whole range": (_sql("DELETE FROM audit_entry WHERE idx >= 16 AND idx < 24"), 1),
    "premature deletion": (_sql("DELETE FROM audit_payload WHERE idx = 20"), 1),
    "truncated": (_sql("DELETE FROM audit_entry WHERE idx >= 25"), 1),
    "text where a blob belongs": (_sql("UPDATE audit_entry SET leaf_hash = 'x' WHERE idx = 22"), 1),
    "text where an index belongs": (_sql("UPDATE audit_entry SET idx = 'x' WHERE idx = 20"), 1),
    "hash-only entry first in a range": (
        _sql("UPDATE audit_entry SET header = NULL WHERE idx = 16"),
        0,
    ),
    "head understates the size": (_sql("UPDATE audit_shard SET size = 10"), 0),
    "head overstates the size": (_sql("UPDATE audit_shard SET size = 100"), 1),
    "head claims a trillion entries": (_sql("UPDATE audit_shard SET size = 1000000000000"), 1),
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> SampleStore:
    """31 entries, then 15 more with a checkpoint every 4: checkpoints inside worker ranges."""
    store = sample_store(tmp_path_factory.mktemp("pristine"), entries=30)
    log, storage = store.open_log()
    for i in range(30, 45):
        log.append("decision", decision_fields(i), decision_payload(i))
        if i % 4 == 0:
            log.checkpoint_now()
    log.close()
    storage.close()
    return store


@pytest.fixture
def small_ranges(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Cut worker ranges of 8 entries; returns the ranges the workers were given."""
    monkeypatch.setattr(shard, "RANGE_BITS", 3)
    given: list[tuple[int, int]] = []
    check = WorkerPool.check

    def recorded(self: WorkerPool, origin: str, start: int, end: int, *a: Any, **kw: Any) -> Any:
        given.append((start, end))
        return check(self, origin, start, end, *a, **kw)

    monkeypatch.setattr(WorkerPool, "check", recorded)
    return given


def _attacked(tmp_path: Path, pristine: SampleStore, attack: str) -> Path:
    db = tmp_path / "clearance.db"
    shutil.copy(pristine.db, db)
    conn = sqlite3.connect(db)
    ATTACKS[attack][0](conn)
    conn.commit()
    conn.close()
    return db


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_workers_report_what_one_process_reports(
    tmp_path: Path, pristine: SampleStore, attack: str, small_ranges: list[tuple[int, int]]
) -> None:
    db = _attacked(tmp_path, pristine, attack)
    keys = [VerifierKey.parse(pristine.vkey)]
    one = verify_log(db, keys)
    assert not small_ranges
    two = verify_log(db, keys, jobs=2)
    assert small_ranges, "the workers were given no ranges"
    assert two.findings == one.findings
    assert two.entries_checked == one.entries_checked
    assert two.state == one.state
    assert one.exit_code == ATTACKS[attack][1], [f.to_line() for f in one.findings]


def test_the_workers_read_every_range_below_the_recorded_size(
    tmp_path: Path, pristine: SampleStore, small_ranges: list[tuple[int, int]]
) -> None:
    report = verify_log(pristine.db, [VerifierKey.parse(pristine.vkey)], jobs=2)
    assert report.exit_code == 0
    assert report.entries_checked == 46
    assert small_ranges == [(0, 8), (8, 16), (16, 24), (24, 32), (32, 40), (40, 46)]


def test_a_tampered_entry_in_a_worker_range_is_reported_with_its_index(
    tmp_path: Path,
    pristine: SampleStore,
    small_ranges: list[tuple[int, int]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    db = _attacked(tmp_path, pristine, "edited payload inside a worker range")
    code = main(["log", str(db), "--key", pristine.vkey, "--jobs", "2", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert (8, 16) in small_ranges
    [finding] = [f for f in out["findings"] if f["severity"] == "tampered"]
    assert finding["index"] == 13
    assert "payload does not match its commitment" in finding["message"]
    assert out["entries_checked"] == 46  # a payload edit does not stop the replay


def test_a_relinked_range_boundary_is_reported_by_the_parent(
    tmp_path: Path, pristine: SampleStore, small_ranges: list[tuple[int, int]]
) -> None:
    db = _attacked(tmp_path, pristine, "relinked last entry of a range")
    report = verify_log(db, [VerifierKey.parse(pristine.vkey)], jobs=2)
    [finding] = [f for f in report.findings if f.severity.name == "TAMPERED"]
    assert (finding.index, report.entries_checked) == (16, 16)
    assert "prev does not match the leaf hash of entry 15" in finding.message


def test_incremental_run_with_workers_starts_at_the_saved_state(
    tmp_path: Path, pristine: SampleStore, small_ranges: list[tuple[int, int]]
) -> None:
    keys = [VerifierKey.parse(pristine.vkey)]
    db = tmp_path / "clearance.db"
    shutil.copy(pristine.db, db)
    first = verify_log(db, keys, jobs=2)
    assert first.state is not None
    saved = first.state["shards"][pristine.origin]["size"]
    log, storage = SampleStore(db, pristine.key, pristine.origin).open_log()
    for i in range(45, 70):
        log.append("decision", decision_fields(i), decision_payload(i))
    log.close()
    storage.close()
    small_ranges.clear()
    again = verify_log(db, keys, state=first.state, jobs=2)
    assert again.exit_code == 0, [f.to_line() for f in again.findings]
    assert again.entries_checked == 71 - saved
    assert small_ranges[0][0] == saved  # the first range starts where the state ends, unaligned
    assert again.state == verify_log(db, keys, state=first.state).state


@pytest.mark.parametrize("jobs", ["0", "-1", "two", "65"])
def test_a_bad_jobs_value_is_unusable_input(pristine: SampleStore, jobs: str) -> None:
    assert main(["log", str(pristine.db), "--key", pristine.vkey, "--jobs", jobs]) == 2


def test_an_unreadable_store_is_unusable_with_workers(
    tmp_path: Path, pristine: SampleStore
) -> None:
    assert main(["log", str(tmp_path / "absent.db"), "--key", pristine.vkey, "--jobs", "2"]) == 2
