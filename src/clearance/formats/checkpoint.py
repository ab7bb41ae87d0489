"""C2SP tlog-checkpoint v1.0.0 bodies inside signed notes.

Example::

    >>> from clearance.formats.checkpoint import Checkpoint
    >>> Checkpoint("example.com/log", 0, EMPTY_ROOT).to_text()   # doctest: +SKIP
    'example.com/log\\n0\\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\\n'

clearance writes exactly three lines and no extension lines; the parser rejects extension lines too,
so a checkpoint has exactly one textual form for a given (origin, size, root).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass

from clearance.formats.merkle import HASH_SIZE
from clearance.formats.note import (
    ALG_COSIGNATURE_V1,
    Note,
    NoteError,
    VerifierKey,
    check_key_name,
    open_note,
)

_LINES = 3


class CheckpointError(ValueError):
    """A checkpoint body is malformed, of another origin, or not signed by the log key."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tree head: origin, size and RFC 9162 root."""

    origin: str
    size: int
    root: bytes

    def __post_init__(self) -> None:
        if self.size < 0 or len(self.root) != HASH_SIZE:
            raise CheckpointError("a checkpoint needs a non-negative size and a 32-byte root")

    def to_text(self) -> str:
        """The note text: origin, decimal size, base64 root, each followed by a newline."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Parse a checkpoint body; raise ``CheckpointError`` on any deviation from the format."""
        lines = text.split("\n")
        if len(lines) != _LINES + 1 or lines[-1] != "":
            raise CheckpointError(
                "checkpoint body is not exactly three lines (extension lines are not accepted)"
            )
        origin, size_text, root_text = lines[:_LINES]
        try:
            check_key_name(origin)
        except NoteError as exc:
            raise CheckpointError(
                f"checkpoint origin `{origin[:80]}` is not a valid log name"
            ) from exc
        if (
            not size_text.isdigit()
            or not size_text.isascii()
            or (size_text != "0" and size_text[0] == "0")
        ):
            raise CheckpointError(
                f"checkpoint size `{size_text[:30]}` is not a decimal without leading zeros"
            )
        try:
            root = base64.b64decode(root_text, validate=True)
        except (ValueError, binascii.Error) as exc:  # ValueError: non-ASCII text
            raise CheckpointError("checkpoint root is not standard base64") from exc
        if len(root) != HASH_SIZE:
            raise CheckpointError(f"checkpoint root is {len(root)} bytes, not 32")
        return cls(origin, int(size_text), root)


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A verified checkpoint with the note it came from (bytes kept verbatim for re-publication)."""

    checkpoint: Checkpoint
    note: Note
    raw: bytes


def verify_checkpoint(
    data: bytes, keys: Iterable[VerifierKey], *, origin: str | None = None
) -> SignedCheckpoint:
    """Open a signed checkpoint note; the log signature must be by a key named like the origin.

    ``keys`` are deployment keys; each is re-derived under the checkpoint's origin name, since a
    shard signs with the deployment key under its own origin (AUDIT.md 3.1). Witness
    cosignature keys (type 0x04) are passed through unchanged, but at least one signature must be
    the log's own.
    """
    text_end = data.rfind(b"\n\n")
    try:
        cp = Checkpoint.from_text(data[: text_end + 1].decode("utf-8") if text_end >= 0 else "")
    except UnicodeDecodeError as exc:
        raise CheckpointError("checkpoint is not UTF-8") from exc
    if origin is not None and cp.origin != origin:
        raise CheckpointError(f"checkpoint is for origin `{cp.origin}`, expected `{origin}`")
    key_list = list(keys)
    log_keys = [k.with_name(cp.origin) for k in key_list if k.alg != ALG_COSIGNATURE_V1]
    witness_keys = [k for k in key_list if k.alg == ALG_COSIGNATURE_V1]
    try:
        note = open_note(data, [*log_keys, *witness_keys])
    except NoteError as exc:
        raise CheckpointError(f"checkpoint for `{cp.origin}` size {cp.size}: {exc}") from exc
    if not any(s.name == cp.origin for s in note.verified):
        raise CheckpointError(f"checkpoint for `{cp.origin}` is not signed by the log key")
    return SignedCheckpoint(cp, note, data)
