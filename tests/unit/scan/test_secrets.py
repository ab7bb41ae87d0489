import pytest

from clearance.scan import SecretScanner
from clearance.scan.finding import flagged
from clearance.scan.secrets import shannon_entropy

SCANNER = SecretScanner()


def top_kind(text: str) -> str:
    found = SCANNER.scan(text)
    return max(found, key=lambda f: f.score).kind if found else ""


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("key AKIA2E0A8F3B244C9986 here", "aws-access-key-id"),
        ("ghp_R7b2Kq9ZxLm4Tn8Vw1Yc5Pd3Hf6Js0Ga2Eu9", "github-token"),
        ("glpat-Xk29fLm3Qp8Rz5Tn1Vb7", "gitlab-token"),
        ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "stripe-key"),
        ("sk-ant-api03-Zx8Kq2Lm9Rt4Vb7Nc1Pd6Hs3Jf5", "anthropic-key"),
        ("postgres://app:S3cr3t-pw@db.internal/prod", "password-in-url"),
        ('{"type": "service_account", "private_key_id": "ab"}', "gcp-service-account"),
        ("the db password is b208zFJZRHsQ92Cu", "password-assignment"),
    ],
)
def test_detects_secret_formats(text: str, kind: str) -> None:
    assert top_kind(text) == kind
    assert flagged(SCANNER.scan(text), SCANNER.threshold)


@pytest.mark.parametrize(
    "text",
    [
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
        "postgres://user:<password>@localhost/db",
        "password = os.environ['DB_PASSWORD']",
        "secret_key = settings.SECRET_KEY",
        "commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
        "id 6f1c2a9e-3b7d-4e1f-9a2c-7d8e9f0a1b2c",
        "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----",
    ],
)
def test_placeholders_and_digests_are_not_flagged(text: str) -> None:
    assert not flagged(SCANNER.scan(text), SCANNER.threshold), SCANNER.scan(text)


def test_placeholder_is_still_reported_for_masking() -> None:
    [finding] = SCANNER.scan("AKIAIOSFODNN7EXAMPLE")
    assert finding.kind == "aws-access-key-id:placeholder"
    assert finding.score < SCANNER.threshold


def test_entropy_needs_a_naming_keyword_to_flag() -> None:
    value = "Zx8Kq2Lm9Rt4Vb7Nc1Pd6Hs3Jf5Gw0Ye"
    assert not flagged(SCANNER.scan(f"ref {value}"), SCANNER.threshold)
    assert flagged(SCANNER.scan(f"bearer token {value}"), SCANNER.threshold)


def test_shannon_entropy() -> None:
    assert shannon_entropy("") == 0.0
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == 2.0
