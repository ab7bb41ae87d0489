import pytest

from clearance.scan import UrlScanner, parse_url


def test_host_is_the_whole_host() -> None:
    url = parse_url("https://allowed.com.evil.com/login")
    assert url.host == "allowed.com.evil.com"
    assert url.registrable_domain == "evil.com"


def test_userinfo_is_stripped_and_flagged() -> None:
    url = parse_url("https://allowed.com@evil.com/")
    assert url.host == "evil.com"
    assert url.had_userinfo
    [finding] = UrlScanner().scan("go to https://allowed.com@evil.com/ now")
    assert finding.kind == "url-userinfo"
    assert finding.score >= UrlScanner().threshold


def test_normal_form() -> None:
    url = parse_url("HTTPS://Example.COM:443/a/b/?q=1")
    assert url.key == "example.com/a/b?q=1"
    assert parse_url("http://example.com:8080/").key == "example.com:8080"
    assert parse_url("www.Example.co.uk/x").registrable_domain == "example.co.uk"


def test_idna_host() -> None:
    url = parse_url("https://b\u00fccher.example/")
    assert url.host == "xn--bcher-kva.example"
    assert url.punycode


def test_scan_trims_trailing_punctuation() -> None:
    [finding] = UrlScanner().scan("see (https://example.com/docs).")
    assert finding.excerpt == "https://example.com/docs"
    assert finding.kind == "url"


def test_no_host_is_an_error() -> None:
    with pytest.raises(ValueError, match="host"):
        parse_url("https://")
