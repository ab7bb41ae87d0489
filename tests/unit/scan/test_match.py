import re

from clearance.scan._match import Rule, lowercase, run, words_of


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
