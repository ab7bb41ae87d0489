"""Allowlist matching and address checks: pure decisions, no sockets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from clearance.sandbox import EgressPolicy
from clearance.sandbox.egress import EgressRefused, normalize_host


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("api.example.com", True),
        ("API.Example.COM.", False),  # not normalized here: the proxy normalizes first
        ("deep.sub.cdn.test", True),
        ("cdn.test", False),  # a wildcard does not match its apex
        ("api.example.com.evil.test", False),
        ("evilapi.example.com", False),
        ("203.0.113.7", True),
    ],
)
def test_allowlist_matches_exact_names_wildcards_and_literals(host: str, allowed: bool) -> None:
    policy = EgressPolicy(allow=("api.example.com", "*.cdn.test", "203.0.113.7"))
    assert policy.allows_name(host) is allowed


@pytest.mark.parametrize(
    ("raw", "normal"),
    [("API.Example.COM.", "api.example.com"), ("[::1]", "::1"), ("127.000.0.1", None)],
)
def test_hosts_are_normalized_or_refused(raw: str, normal: str | None) -> None:
    if normal is None:
        with pytest.raises(EgressRefused):
            normalize_host(raw)
    else:
        assert normalize_host(raw) == normal


@pytest.mark.parametrize(
    "address",
    ["10.0.0.5", "127.0.0.1", "169.254.169.254", "::1", "fd00::1", "224.0.0.1", "0.0.0.0"],
)
def test_private_and_special_addresses_are_refused_by_default(address: str) -> None:
    with pytest.raises(EgressRefused, match="private-address"):
        EgressPolicy(allow=("x.test",)).check_address(address)


def test_private_network_may_be_granted_explicitly() -> None:
    policy = EgressPolicy(allow=("x.test",), allow_private=("10.1.0.0/16",))
    policy.check_address("10.1.2.3")
    policy.check_address("93.184.216.34")
    with pytest.raises(EgressRefused):
        policy.check_address("10.2.0.1")


@pytest.mark.parametrize("entry", ["exa mple.com", "*.", "a..b", "http://x.test", "x.test/path"])
def test_bad_allow_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValidationError):
        EgressPolicy(allow=(entry,))
