"""C2SP signed notes against the Go sumdb/note and C2SP signed-note vectors."""

from __future__ import annotations

import pytest

from clearance.audit.sign import AuditKey
from clearance.formats.note import (
    NoteError,
    VerifierKey,
    add_signatures,
    open_note,
    parse_note,
)

EM = "\u2014"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    f"{EM} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSN"
    "XgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    f"{EM} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTG"
    "wnWLox33WWd1RvMc+QQ=\n"
)
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n"
    f"{EM} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3"
    "mFXmRKuwHjG1Yu72IneyaQM=\n"
).encode()
PLUS_VKEY = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"
SUMDB_VKEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"


def test_go_private_key_gives_go_vkey_and_signature() -> None:
    key = AuditKey.from_text(GO_SKEY)
    assert key.vkey == GO_VKEY
    assert key.sign_note(GO_TEXT).to_line() == PETER_SIG
    assert key.to_text() == GO_SKEY


def test_enoch_key_is_the_all_zero_seed() -> None:
    key = AuditKey("EnochRoot", bytes(32))
    assert key.vkey == ENOCH_VKEY
    assert key.sign_note(GO_TEXT).to_line() == ENOCH_SIG


def test_open_with_both_go_signatures() -> None:
    data = (GO_TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode()
    note = open_note(data, [VerifierKey.parse(GO_VKEY), VerifierKey.parse(ENOCH_VKEY)])
    assert [s.name for s in note.verified] == ["PeterNeumann", "EnochRoot"]
    assert note.to_bytes() == data


def test_unknown_signer_is_ignored_but_one_known_is_required() -> None:
    data = (GO_TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode()
    note = open_note(data, [VerifierKey.parse(ENOCH_VKEY)])
    assert [s.name for s in note.verified] == ["EnochRoot"]
    with pytest.raises(NoteError, match="no signature by a trusted key"):
        open_note(data, [VerifierKey.parse(SPEC_VKEY)])


def test_failing_known_signature_rejects_note() -> None:
    data = (GO_TEXT.replace("answer", "Answer") + "\n" + PETER_SIG + ENOCH_SIG).encode()
    with pytest.raises(NoteError, match="does not verify"):
        open_note(data, [VerifierKey.parse(ENOCH_VKEY), VerifierKey.parse(GO_VKEY)])


def test_spec_example_verifies() -> None:
    note = open_note(SPEC_NOTE, [VerifierKey.parse(SPEC_VKEY)])
    assert note.text == "This is an example message.\n"


@pytest.mark.parametrize("vkey", [GO_VKEY, ENOCH_VKEY, SPEC_VKEY, PLUS_VKEY, SUMDB_VKEY])
def test_vkeys_round_trip(vkey: str) -> None:
    assert VerifierKey.parse(vkey).to_text() == vkey


@pytest.mark.parametrize(
    "bad",
    [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong id
        "PeterNeumann+c74f20a3+AxpC2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong type byte
        "PeterNeumann+c74f20a3",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "rekor.sigstore.dev+12345678+AwEB",
    ],
)
def test_malformed_vkeys_rejected(bad: str) -> None:
    with pytest.raises(NoteError):
        VerifierKey.parse(bad)


@pytest.mark.parametrize(
    "data",
    [
        b"no blank line\n",
        ("text without newline\n\n" + PETER_SIG.rstrip("\n")).encode(),
        ("ctl \x01 char\n\n" + PETER_SIG).encode(),
        (b"text\n\n- PeterNeumann abc=\n"),
        b"\xff\xfe\n\n",
    ],
)
def test_malformed_notes_rejected(data: bytes) -> None:
    with pytest.raises(NoteError):
        parse_note(data)


def test_add_signatures_rejects_text_without_final_newline() -> None:
    with pytest.raises(NoteError):
        add_signatures("abc", [])
