"""Coverage-guided fuzzing of the verifier's parsers with atheris (libFuzzer for Python).

``python _atheris_verifier.py [libFuzzer flags] [CORPUS_DIR]``, e.g. ``-runs=20000``. The first
input byte picks a parser; the rest is its input. Each parser may raise only its documented error
(a ``ValueError`` subclass of ``clearance.formats``); anything else is a crash that libFuzzer
reports with the input that caused it, and a non-zero exit. ``test_fuzz.py`` runs it in soak mode.
"""

from __future__ import annotations

import sys

import atheris

from clearance.audit.sign import AuditKey  # not instrumented: the signer is not the target
from clearance.audit.testing import DEPLOYMENT

with atheris.instrument_imports():
    from clearance.formats.checkpoint import CheckpointError, verify_checkpoint
    from clearance.formats.entry import EntryError, parse_header
    from clearance.formats.note import NoteError, VerifierKey, parse_note
    from clearance.formats.proof import ProofFileError, verify_inclusion_proof
    from clearance.formats.receipt import ReceiptError, verify_receipt

KEYS = [VerifierKey.parse(AuditKey(DEPLOYMENT, bytes(32)).vkey)]

TARGETS = [
    (parse_header, (EntryError,)),
    (parse_note, (NoteError,)),
    (lambda data: verify_checkpoint(data, KEYS), (CheckpointError, NoteError)),
    (lambda data: verify_receipt(data, KEYS), (ReceiptError,)),
    (lambda data: verify_inclusion_proof(data, KEYS), (ProofFileError,)),
]


def one_input(data: bytes) -> None:
    if not data:
        return
    parse, allowed = TARGETS[data[0] % len(TARGETS)]
    try:
        parse(data[1:])
    except allowed:
        return


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
