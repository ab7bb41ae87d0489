"""URL hosts for allowlists: anything parsers could disagree on yields no host."""

from __future__ import annotations

import pytest

from clearance.policy.hooks import NO_PROVENANCE, lower, provenance_functions, url_host


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://allowed.com/x", "allowed.com"),
        ("https://ALLOWED.com:8443/x?q=1", "allowed.com"),
        ("http://allowed.com./", "allowed.com"),
        ("https://allowed.com.evil.com/", "allowed.com.evil.com"),
        ("https://allowed.com@evil.com/", ""),
        ("https://user:pw@allowed.com/", ""),
        ("https://evil.com\\@allowed.com/", ""),
        ("https://allowed%2ecom/", ""),
        ("https://allowed.com:99999/", ""),
        ("https://allowed.com:x/", ""),
        ("ftp://allowed.com/", ""),
        ("javascript:alert(1)", ""),
        ("//allowed.com/x", ""),
        ("https://xn--80ak6aa92e.com/", "xn--80ak6aa92e.com"),
        ("https://\u0430llowed.com/", ""),  # a Cyrillic homoglyph
        ("https://allowed .com/", ""),
        ("https://[::1]/", ""),
        (42, ""),
    ],
)
def test_url_host(url: object, host: str) -> None:
    assert url_host(url) == host


def test_lower_refuses_non_text() -> None:
    assert lower("AbC") == "abc"
    with pytest.raises(TypeError):
        lower(1)


def test_no_provenance_means_nothing_was_seen() -> None:
    functions = provenance_functions(NO_PROVENANCE, lambda value: value == "known")
    assert functions["from_instruction"]("x") is False
    assert functions["only_untrusted"]("x") is False
    assert functions["from_data"]("known") is True
    assert functions["sources"]("known") == ["data"]
    assert functions["from_trusted"]("x") is False
