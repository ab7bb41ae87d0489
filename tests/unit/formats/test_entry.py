"""Entry headers: the worked example, strict parsing and the payload commitment."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from clearance.formats.entry import (
    EntryError,
    build_header,
    format_time,
    header_bytes,
    parse_header,
    payload_commitment,
)
from clearance.formats.merkle import leaf_hash

EXAMPLE = Path(__file__).parents[2] / "vectors" / "clearance" / "worked-example"


def test_worked_example_header_parses_and_hashes() -> None:
    raw = (EXAMPLE / "entry-1.json").read_bytes()
    header = parse_header(raw)
    assert len(raw) == 740
    assert header["index"] == 1
    assert (
        leaf_hash(raw).hex() == "19eb766b9e83efe983a0dc9008c152765124e2e4240c878abda012c6575330e1"
    )
    assert header_bytes(header) == raw


def test_build_header_round_trips() -> None:
    header = build_header(
        log="d/node/2026",
        index=3,
        prev=b"\x01" * 32,
        time="2026-01-01T00:00:00.000000Z",
        kind="decision",
        fields={"id": "01J", "tool": "t", "shadow": False},
        retention=("default", "2026-06-30"),
        payload=(b"\x02" * 32, 10),
    )
    assert parse_header(header_bytes(header)) == header
    assert header["prev"] == "sha256:" + "01" * 32


def test_callers_cannot_set_log_fields() -> None:
    with pytest.raises(EntryError, match="set by the log"):
        build_header(
            log="d",
            index=0,
            prev=None,
            time="2026-01-01T00:00:00.000000Z",
            kind="decision",
            fields={"index": 7},
        )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"index":1.5}', "not an integer"),
        (b"[1]", "not a JSON object"),
        (b"{", "not valid JSON"),
        (b'{"v":2}', "unknown entry version"),
    ],
)
def test_malformed_headers_rejected(raw: bytes, message: str) -> None:
    with pytest.raises(EntryError, match=message):
        parse_header(raw)


def test_duplicate_member_rejected() -> None:
    raw = (EXAMPLE / "entry-1.json").read_bytes()
    with pytest.raises(EntryError, match="canonical"):
        parse_header(raw.replace(b'"action":"call",', b'"action":"call","action":"call",'))


def test_non_ascii_member_name_rejected() -> None:
    raw = (EXAMPLE / "entry-1.json").read_bytes()
    with pytest.raises(EntryError, match="not ASCII"):
        parse_header(raw.replace(b'{"action"', '{"\u00e9":1,"action"'.encode()))


def test_large_integer_rejected_even_inside_lists() -> None:
    raw = (EXAMPLE / "entry-1.json").read_bytes()
    with pytest.raises(EntryError, match="representable"):
        parse_header(raw.replace(b'"tool":', b'"tier2":[[9007199254740993]],"tool":'))


def test_non_canonical_bytes_rejected() -> None:
    raw = (EXAMPLE / "entry-1.json").read_bytes()
    spaced = raw.replace(b'"action":"call"', b'"action": "call"')
    with pytest.raises(EntryError, match="canonical"):
        parse_header(spaced)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("prev", None),
        ("time", "2026-03-01T12:00:01Z"),
        ("kind", "Decision"),
        ("policy", "sha256:XYZ"),
        ("retention", {"class": "x"}),
        ("payload", {"commit": "x"}),
        ("index", -1),
        ("tool", 2**60),
    ],
)
def test_field_rules(field: str, value: object) -> None:
    header = parse_header((EXAMPLE / "entry-1.json").read_bytes())
    header[field] = value
    with pytest.raises(EntryError):
        parse_header(header_bytes(header))


def test_payload_commitment_is_keyed_by_salt() -> None:
    salt = hashlib.sha256(b"salt 1").digest()
    body = b'{"a":1}'
    c1 = payload_commitment(salt, body)
    assert len(c1) == 32
    assert payload_commitment(salt, b'{"a":2}') != c1
    assert payload_commitment(hashlib.sha256(b"salt 2").digest(), body) != c1


def test_format_time_is_utc_with_microseconds() -> None:
    ts = datetime(2026, 3, 1, 13, 0, 1, tzinfo=timezone(timedelta(hours=1)))
    assert format_time(ts) == "2026-03-01T12:00:01.000000Z"
    assert format_time(datetime(2026, 3, 1, tzinfo=UTC)).endswith(".000000Z")
    with pytest.raises(EntryError):
        format_time(datetime(2026, 3, 1))  # noqa: DTZ001 - the point of the test
