"""Checkpoints: the worked example and every way a checkpoint can be malformed or misattributed."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from clearance.audit.sign import AuditKey
from clearance.formats.checkpoint import Checkpoint, CheckpointError, verify_checkpoint
from clearance.formats.merkle import EMPTY_ROOT
from clearance.formats.note import VerifierKey, add_signatures

EXAMPLE = Path(__file__).parents[2] / "vectors" / "clearance" / "worked-example"
DEPLOYMENT = "clearance.example/audit+4e6f271a+AbiPvv2TdDXnrB+/lgwcqLt4Qtv4W7NbyveB4DhgwFxs"
WITNESS = "verifier.clearance.example/w1+bea20bfd+BNSo77I709PeRdF01x13j3zQdt4BDnaYWv662xD+zbB1"
ORIGIN = "clearance.example/audit/gate-a/2026"


def test_worked_example_checkpoint() -> None:
    signed = verify_checkpoint(
        (EXAMPLE / "checkpoint").read_bytes(), [VerifierKey.parse(DEPLOYMENT)]
    )
    assert signed.checkpoint.origin == ORIGIN
    assert signed.checkpoint.size == 3
    assert (
        base64.b64encode(signed.checkpoint.root) == b"X7mDh8oQwiYm0iF0G6PojocejjYMYA0KpaLVWjlOIHw="
    )


def test_worked_example_cosignature_time() -> None:
    keys = [VerifierKey.parse(DEPLOYMENT), VerifierKey.parse(WITNESS)]
    signed = verify_checkpoint((EXAMPLE / "checkpoint").read_bytes(), keys)
    assert signed.note.cosignature_times == {"verifier.clearance.example/w1": 1772366402}


def test_checkpoint_of_another_origin_rejected() -> None:
    with pytest.raises(CheckpointError, match="expected"):
        verify_checkpoint(
            (EXAMPLE / "checkpoint").read_bytes(),
            [VerifierKey.parse(DEPLOYMENT)],
            origin="clearance.example/audit/gate-b/2026",
        )


def test_checkpoint_signed_by_witness_only_rejected() -> None:
    data = (EXAMPLE / "checkpoint").read_bytes()
    with pytest.raises(CheckpointError):
        verify_checkpoint(data, [VerifierKey.parse(WITNESS)])


def test_altered_size_rejected() -> None:
    data = (EXAMPLE / "checkpoint").read_bytes().replace(b"\n3\n", b"\n4\n", 1)
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_checkpoint(data, [VerifierKey.parse(DEPLOYMENT)])


@pytest.mark.parametrize(
    "text",
    [
        "o\n03\n" + base64.b64encode(EMPTY_ROOT).decode() + "\n",
        "o\n3\n" + base64.b64encode(EMPTY_ROOT).decode() + "\nextension\n",
        "o\n3\n" + base64.b64encode(EMPTY_ROOT[:31]).decode() + "\n",
        "o o\n3\n" + base64.b64encode(EMPTY_ROOT).decode() + "\n",
        "o\n-3\n" + base64.b64encode(EMPTY_ROOT).decode() + "\n",
        "o\n3\n" + base64.b64encode(EMPTY_ROOT).decode(),
    ],
)
def test_malformed_bodies_rejected(text: str) -> None:
    with pytest.raises(CheckpointError):
        Checkpoint.from_text(text)


def test_signed_by_another_key_rejected() -> None:
    other = AuditKey("clearance.example/audit", bytes(range(32)))
    cp = Checkpoint(ORIGIN, 0, EMPTY_ROOT)
    data = add_signatures(cp.to_text(), [other.sign_note(cp.to_text(), ORIGIN)])
    with pytest.raises(CheckpointError, match="no signature by a trusted key"):
        verify_checkpoint(data, [VerifierKey.parse(DEPLOYMENT)])
    assert verify_checkpoint(data, [other.verifier()]).checkpoint == cp
