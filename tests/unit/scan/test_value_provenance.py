import pytest

from clearance.scan import Provenance, value_key


def test_value_key_normal_forms() -> None:
    assert value_key("DE44 5001 0517 5407 3249 31") == "de44500105175407324931"
    assert value_key("4556-7375-8689-9855") == "4556737586899855"
    assert value_key("$1,200.50") == value_key(1200.5) == "1200.5"
    assert value_key(1000) == "1000"
    assert value_key("HTTPS://Acme.com/pay/") == value_key("acme.com/pay") == "acme.com/pay"
    assert value_key("  Bob@Example.COM ") == "bob@example.com"
    assert value_key("John   Smith") == "john smith"


def test_sources_and_taint() -> None:
    prov = Provenance()
    prov.record("instruction", "Pay ACME Corp 1,200 EUR, see https://acme.com/invoice/7")
    prov.record("untrusted:fetch_url", {"items": [{"iban": "GB33BUKB20201555555555"}], "n": 7})
    prov.record("trusted-tool:crm", ["bob@corp.io"])
    assert prov.is_from_instruction("acme corp")
    assert prov.is_from_instruction("1200")
    assert prov.is_from_instruction("http://acme.com/invoice/7/")
    assert prov.is_from_instruction("acme.com")
    assert prov.only_untrusted("GB33 BUKB 2020 1555 5555 55")
    assert prov.is_trusted("BOB@corp.io")
    assert prov.is_trusted("corp.io")
    assert not prov.only_untrusted("never seen")
    assert prov.sources_of("never seen") == frozenset()
    assert prov.taint == frozenset({"untrusted:fetch_url"})


def test_words_must_appear_together() -> None:
    prov = Provenance()
    prov.record("instruction", "pay Evil later; Bank of Springfield is fine")
    assert not prov.is_from_instruction("Evil Bank")
    assert prov.is_from_instruction("Bank of Springfield")


@pytest.mark.parametrize("source", ["trusted", "untrusted:", "tool:x", "untrusted:a b"])
def test_invalid_sources_are_rejected(source: str) -> None:
    with pytest.raises(ValueError, match="provenance source"):
        Provenance().record(source, "x")


def test_round_trip_and_merge() -> None:
    prov = Provenance()
    prov.record("instruction", "alpha beta")
    prov.record("untrusted:web", "gamma")
    copy = Provenance.from_dict(prov.to_dict())
    assert copy.to_dict() == prov.to_dict()
    other = Provenance()
    other.record("untrusted:mail", "alpha")
    copy.merge(other)
    assert copy.sources_of("alpha") == {"instruction", "untrusted:mail"}
    assert copy.taint == {"untrusted:web", "untrusted:mail"}
    with pytest.raises(ValueError, match="exactly"):
        Provenance.from_dict({"values": {}})
