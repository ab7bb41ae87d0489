import pytest

from clearance.scan import PiiScanner
from clearance.scan.finding import flagged
from clearance.scan.pii import iban_valid, luhn_valid

SCANNER = PiiScanner()


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("mail maria.g@gmail.com", "email"),
        ("card 4556 7375 8689 9855", "card-number"),
        ("IBAN DE44 5001 0517 5407 3249 31", "iban"),
        ("SSN 536-22-8191", "us-ssn"),
        ("NINO JH 48 29 13 B", "uk-nino"),
        ("passport number TR4829173", "passport-number"),
        ("call +44 20 7946 0958", "phone-number"),
        ("DOB: 14/07/1962", "date-of-birth"),
    ],
)
def test_detects_pii(text: str, kind: str) -> None:
    assert [f.kind for f in SCANNER.scan(text)] == [kind]
    assert flagged(SCANNER.scan(text), SCANNER.threshold)


@pytest.mark.parametrize(
    "text",
    [
        "order 1234 5678 9012 3456",  # fails Luhn
        "IBAN DE12 3456 7890 1234 5678 90",  # fails mod-97
        "000-12-3456 and 666-45-6789 and 912-34-5678",  # never-issued SSN ranges
        "test card 4111 1111 1111 1111",
        "write to user@example.com",
        "postgres://app:pw12345@db.internal/prod",
        "version 2.14.3 on 2024-03-05",
    ],
)
def test_rejects_invalid_and_example_values(text: str) -> None:
    assert not flagged(SCANNER.scan(text), SCANNER.threshold), SCANNER.scan(text)


def test_checksums() -> None:
    assert luhn_valid("4556737586899855")
    assert not luhn_valid("4556737586899856")
    assert iban_valid("GB82 WEST 1234 5698 7654 32")
    assert not iban_valid("GB82 WEST 1234 5698 7654 33")
    assert not iban_valid("GB82 WEST 1234")
