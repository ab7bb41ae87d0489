"""C2SP signed-note v1.0.0 with Ed25519 (type 0x01) and cosignature/v1 (type 0x04) signatures.

Example::

    >>> from clearance.formats.note import VerifierKey, open_note
    >>> key = VerifierKey.parse("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
    >>> note = open_note(signed_bytes, [key])        # doctest: +SKIP
    >>> note.text, [s.name for s in note.verified]   # doctest: +SKIP

Rules enforced (C2SP signed-note): the text is UTF-8 without control characters other than newline
and ends with a newline; signature lines follow the *last* blank line and start with an em dash and
a space; unknown (name, key id) pairs are ignored; a known key whose signature fails rejects the
whole note; a note with no verified signature is rejected. At most ``MAX_SIGNATURES`` lines are read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
SIGNATURE_PREFIX = "\u2014 "
MAX_SIGNATURES = 100
_ED25519_SIG = 64
_COSIG_SIG = 72


class NoteError(ValueError):
    """A signed note, signature line or verifier key is malformed or does not verify."""


def key_id(name: str, alg: int, public_key: bytes) -> int:
    """``SHA-256(name || 0x0A || alg || public_key)[:4]`` as a big-endian integer."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def check_key_name(name: str) -> None:
    """Key names are non-empty, without Unicode spaces and without ``+`` (C2SP signed-note)."""
    if not name or "+" in name or any(c.isspace() for c in name):
        raise NoteError(f"key name `{name[:80]}` is empty or contains a space or `+`")


@dataclass(frozen=True, slots=True)
class VerifierKey:
    """A verifier key ("vkey"): ``<name>+<8 hex key id>+<base64(alg || public key)>``."""

    name: str
    alg: int
    public_key: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if self.alg not in (ALG_ED25519, ALG_COSIGNATURE_V1) or len(self.public_key) != 32:
            raise NoteError(f"key `{self.name}` is not an Ed25519 key of type 0x01 or 0x04")

    @property
    def key_id(self) -> int:
        """The 32-bit key id derived from name, type and key."""
        return key_id(self.name, self.alg, self.public_key)

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        """Parse a vkey, splitting on the first two ``+`` only (base64 may contain ``+``).

        The key id in the text must match the one recomputed from name and key (as Go's
        ``note.NewVerifier`` requires), so a mistyped or substituted key is caught at load time.
        """
        name, sep1, rest = text.strip().partition("+")
        hex_id, sep2, b64 = rest.partition("+")
        if not (sep1 and sep2) or len(hex_id) != 8 or hex_id.lower() != hex_id:
            raise NoteError(f"verifier key `{text[:80]}` is not `<name>+<8 hex>+<base64>`")
        try:
            claimed = int(hex_id, 16)
            raw = base64.b64decode(b64, validate=True)
        except (ValueError, binascii.Error) as exc:
            raise NoteError(f"verifier key `{text[:80]}` has a bad key id or base64") from exc
        if not raw:
            raise NoteError(f"verifier key `{text[:80]}` holds no key")
        key = cls(name, raw[0], raw[1:])
        if key.key_id != claimed:
            raise NoteError(
                f"verifier key `{text[:80]}` has key id {hex_id}, expected {key.key_id:08x}"
            )
        return key

    def to_text(self) -> str:
        """The vkey text."""
        b64 = base64.b64encode(bytes([self.alg]) + self.public_key).decode()
        return f"{self.name}+{self.key_id:08x}+{b64}"

    def with_name(self, name: str) -> VerifierKey:
        """The same public key under another name (a shard origin under the deployment name)."""
        return VerifierKey(name, self.alg, self.public_key)

    def verify(self, message: bytes, signature: bytes) -> None:
        """Raise ``NoteError`` unless ``signature`` is this key's Ed25519 signature of ``message``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature as exc:
            raise NoteError(f"signature by `{self.name}` does not verify") from exc


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: key name, key id and the signature bytes after the key id."""

    name: str
    key_id: int
    signature: bytes

    def to_line(self) -> str:
        """``— <name> <base64(key id || signature)>\\n``."""
        b64 = base64.b64encode(struct.pack(">I", self.key_id) + self.signature).decode()
        return f"{SIGNATURE_PREFIX}{self.name} {b64}\n"

    @classmethod
    def parse_line(cls, line: str) -> NoteSignature:
        """Parse one signature line without its trailing newline."""
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError("signature line does not start with an em dash and a space")
        name, sep, b64 = line[len(SIGNATURE_PREFIX) :].partition(" ")
        if not sep or " " in b64:
            raise NoteError("signature line is not `— <name> <base64>`")
        check_key_name(name)
        try:
            raw = base64.b64decode(b64, validate=True)
        except (ValueError, binascii.Error) as exc:  # ValueError: non-ASCII text
            raise NoteError(f"signature by `{name}` is not valid base64") from exc
        if len(raw) < 5:
            raise NoteError(f"signature by `{name}` is too short")
        return cls(name, int.from_bytes(raw[:4], "big"), raw[4:])


@dataclass(frozen=True, slots=True)
class Note:
    """A parsed note: its text, every signature line and, once opened, the verified ones."""

    text: str
    signatures: tuple[NoteSignature, ...]
    verified: tuple[NoteSignature, ...] = field(default=())
    cosignature_times: dict[str, int] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        """Text, blank line, signature lines."""
        return (self.text + "\n" + "".join(s.to_line() for s in self.signatures)).encode()


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("note text does not end with a newline")
    for ch in text:
        if ch < " " and ch != "\n":
            raise NoteError("note text contains a control character")


def parse_note(data: bytes) -> Note:
    """Split a signed note into text and signature lines without verifying anything."""
    try:
        whole = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NoteError("note is not UTF-8") from exc
    cut = whole.rfind("\n\n")
    if cut < 0:
        raise NoteError("note has no blank line before its signatures")
    text, sig_block = whole[: cut + 1], whole[cut + 2 :]
    _check_text(text)
    if not sig_block.endswith("\n"):
        raise NoteError("signature block does not end with a newline")
    lines = sig_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has more than {MAX_SIGNATURES} signatures")
    return Note(text, tuple(NoteSignature.parse_line(line) for line in lines))


def cosignature_message(text: str, timestamp: int) -> bytes:
    """What a cosignature/v1 signs: ``cosignature/v1\\ntime <t>\\n`` followed by the note text."""
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


def open_note(data: bytes, keys: Iterable[VerifierKey]) -> Note:
    """Parse and verify a note; return it with ``verified`` set, or raise ``NoteError``.

    Signatures by unknown keys are ignored (so witnesses can be added without breaking verifiers);
    a signature by a known key that fails rejects the note.
    """
    note = parse_note(data)
    known = {(k.name, k.key_id): k for k in keys}
    verified: list[NoteSignature] = []
    times: dict[str, int] = {}
    for sig in note.signatures:
        key = known.get((sig.name, sig.key_id))
        if key is None:
            continue
        if key.alg == ALG_ED25519:
            if len(sig.signature) != _ED25519_SIG:
                raise NoteError(f"signature by `{sig.name}` is not 64 bytes")
            key.verify(note.text.encode(), sig.signature)
        else:
            if len(sig.signature) != _COSIG_SIG:
                raise NoteError(f"cosignature by `{sig.name}` is not 72 bytes")
            ts = int.from_bytes(sig.signature[:8], "big")
            key.verify(cosignature_message(note.text, ts), sig.signature[8:])
            times[sig.name] = ts
        verified.append(sig)
    if not verified:
        names = ", ".join(sorted({s.name for s in note.signatures})) or "none"
        raise NoteError(f"no signature by a trusted key (signers: {names})")
    return Note(note.text, note.signatures, tuple(verified), times)


def add_signatures(text: str, signatures: Sequence[NoteSignature]) -> bytes:
    """Assemble a signed note from its text and signature lines."""
    _check_text(text)
    return Note(text, tuple(signatures)).to_bytes()
