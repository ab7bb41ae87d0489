import re

import pytest

from clearance.scan._match import Alphabet, Rule, lowercase, run, words_of


def test_matches_longer_than_the_window_are_matched_in_full() -> None:
    rule = Rule("k", 1.0, re.compile(r"key=[a-z]+"), literals=("key=",), window=8)
    text = "x key=" + "a" * 50 + " y"
    [match] = run(rule, text, text, frozenset())
    assert match.group() == "key=" + "a" * 50


def test_each_span_is_reported_once_and_in_order() -> None:
    rule = Rule("k", 1.0, re.compile(r"ignore \w+"), words=("ignore",), back=0)
    text = "Ignore this. then ignore that"
    low = lowercase(text)
    spans = [m.span() for m in run(rule, text, low, words_of(low))]
    assert spans == [(0, 11), (18, 29)]


def test_rules_without_a_present_trigger_do_not_run() -> None:
    rule = Rule("k", 1.0, re.compile(r"ignore"), words=("ignore",))
    assert run(rule, "ignored", "ignored", words_of("ignored")) == []


def test_lowercase_keeps_offsets() -> None:
    text = "\u0130stanbul ABC"
    assert len(lowercase(text)) == len(text)
    assert lowercase(text).endswith("abc")
    assert words_of("hello, w\u00f6rld-wide") == {"hello", "w", "rld", "wide"}


def test_a_located_match_may_start_up_to_back_before_its_trigger() -> None:
    rule = Rule("k", 1.0, re.compile(r"new \w+ orders:"), words=("orders",), back=12)
    text = "x. new secret orders: do it. new orders"
    low = lowercase(text)
    assert [m.group() for m in run(rule, text, low, words_of(low))] == ["new secret orders:"]


def test_dense_triggers_report_non_overlapping_matches_once() -> None:
    rule = Rule("k", 1.0, re.compile(r"a+b"), literals=("a",), back=0, lower=False)
    text = "aaab aab b ab"
    assert [m.span() for m in run(rule, text, text, frozenset())] == [(0, 4), (5, 8), (11, 13)]


def test_located_matches_do_not_overlap_and_are_found_after_misses() -> None:
    rule = Rule("k", 1.0, re.compile(r"x+y"), literals=("y",), back=3, lower=False)
    text = "xxy xy y xxxxxy"
    spans = [m.span() for m in run(rule, text, text, frozenset())]
    # The last match starts five before its trigger, beyond back: only its last three x count.
    assert spans == [(0, 3), (4, 6), (11, 15)]


def test_alphabet_runs_keep_character_offsets_in_non_ascii_text() -> None:
    alphabet = Alphabet("abc")
    text = "\u00e9\u00e9 abcabc \U0001f600 cab ab \u4e2d" + "abcd"
    runs = alphabet.runs(text, 3)
    assert [text[s:e] for s, e in runs] == ["abcabc", "cab", "abc"]
    assert alphabet.runs("no runs here", 3) == []


def test_an_alphabet_must_be_ascii() -> None:
    with pytest.raises(ValueError, match="ASCII"):
        Alphabet("\u00e9")
