"""Baselines: EWMA, sliding-window rate, warm-up and floors, learned tool sets."""

from __future__ import annotations

from clearance.control.baseline import BaselineBook, Ewma, RateBaseline, SequenceBook


def test_ewma_first_value_sets_mean_then_weights() -> None:
    e = Ewma()
    e.update(10)
    assert e.mean == 10
    e.update(20, alpha=0.5)
    assert e.mean == 15
    assert e.samples == 2


def test_limit_waits_for_warmup_and_respects_floor() -> None:
    e = Ewma()
    e.update(1)
    assert e.limit(factor=3, floor=10, warmup=2) is None
    e.update(1)
    assert e.limit(factor=3, floor=10, warmup=2) == 10
    e.update(100, alpha=1.0)
    assert e.limit(factor=3, floor=10, warmup=2) == 300


def test_quiet_agent_does_not_trip_on_its_second_call() -> None:
    rate = RateBaseline(60.0, Ewma())
    assert rate.observe(0.0) == 1
    assert rate.limit(factor=3, floor=10, warmup=1) is None  # no window learned yet
    rate.observe(61.0)
    assert rate.limit(factor=3, floor=10, warmup=1) == 10  # baseline 1/min, floor wins


def test_sliding_estimate_counts_a_spike_straddling_a_boundary() -> None:
    rate = RateBaseline(60.0, Ewma())
    for i in range(30):
        rate.observe(50.0 + i * 0.3)  # 30 calls in 50..59 s
    count = 0.0
    for i in range(30):
        count = rate.observe(60.0 + i * 0.1)  # 30 more at 60..63 s
    assert count > 55  # the previous window's calls still count


def test_idle_windows_do_not_drag_the_baseline_down() -> None:
    rate = RateBaseline(60.0, Ewma())
    for t in range(0, 60, 6):
        rate.observe(float(t))  # 10 calls in the first minute
    rate.observe(36000.0)  # ten hours later
    assert rate.ewma.mean == 10
    assert rate.previous == 0


def test_book_round_trips_dirty_records() -> None:
    book = BaselineBook()
    for t in range(0, 130, 5):
        book.observe_call("a", "read", float(t))
    book.observe_size("a", "read", 1000)
    rows = {(r.metric, r.tool): r for r in book.dirty_records("now")}
    assert rows[("rate", "read")].samples == 26
    assert rows[("size", "read")].mean == 1000
    assert book.dirty_records("now") == []
    restored = BaselineBook()
    restored.load(rows.values())
    assert restored.rate("a", "read").ewma.mean == book.rate("a", "read").ewma.mean
    assert restored.size("a", "read").samples == 1


def test_sequence_book_learns_during_warmup_then_flags_new_tools() -> None:
    seq = SequenceBook(warmup=3)
    for tool in ("read", "read", "write"):
        assert not seq.unusual("ops", tool)
        seq.observe("ops", tool)
    assert seq.learned("ops")
    assert not seq.unusual("ops", "write")
    assert seq.unusual("ops", "delete")
    assert not seq.unusual("other-task", "delete")  # a new task type is still learning
