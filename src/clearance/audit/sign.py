"""Issuer-side keys: the Ed25519 audit key (checkpoints, receipts) and the masking key.

Example::

    >>> from clearance.audit.sign import AuditKey
    >>> key = AuditKey.generate("audit.acme.example/clearance")
    >>> key.save(path)                       # doctest: +SKIP  (mode 0600, refuses to overwrite)
    >>> envelope = key.sign_receipt(statement)   # doctest: +SKIP

Key files use Go's ``PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>`` text so keys work with
Go's ``golang.org/x/mod/sumdb/note`` tooling. Files readable by group or others are refused on
load (``KeyFileError``): a signing key that others can read is no longer evidence of anything.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import stat
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from clearance.errors import KeyFileError
from clearance.formats.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    NoteError,
    NoteSignature,
    VerifierKey,
    check_key_name,
    cosignature_message,
)
from clearance.formats.receipt import PAYLOAD_TYPE, make_envelope, pae, statement_bytes

PRIVATE_KEY_PREFIX = "PRIVATE+KEY+"
MASK_KEY_PREFIX = "MASK+KEY+"
_SEED_BYTES = 32
_KID_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}\Z")


def _write_private(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600, refusing to replace an existing key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise KeyFileError(
            f"key file `{path}` already exists",
            hint="remove it first if you mean to replace the key",
        ) from exc
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(text + "\n")


def _read_private(path: Path) -> str:
    """Read a key file after checking that only its owner can read it."""
    try:
        st = path.stat()
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(
                f"key file `{path}` is readable by others (mode {stat.S_IMODE(st.st_mode):04o})",
                hint=f"run `chmod 600 {path}`",
            )
        return path.read_text(encoding="ascii").strip()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file `{path}`: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise KeyFileError(f"key file `{path}` is not ASCII text") from exc


class AuditKey:
    """The deployment's Ed25519 audit key, named with the deployment name ``D``.

    Checkpoints are signed under each shard's origin (``D/<replica>/<period>``) as key name;
    receipts carry the key id of ``D``. Both use the same raw key, so one vkey is the whole trust
    anchor an auditor needs.
    """

    __slots__ = ("_key_ids", "_private", "_public", "_receipt_keyid", "name")

    def __init__(self, name: str, seed: bytes) -> None:
        try:
            check_key_name(name)
        except NoteError as exc:
            raise KeyFileError(str(exc)) from exc
        if len(seed) != _SEED_BYTES:
            raise KeyFileError("an Ed25519 seed is 32 bytes")
        self.name = name
        self._private = Ed25519PrivateKey.from_private_bytes(seed)
        self._public = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        # Key ids hash the key name; a receipt or checkpoint needs one per signature, so they are
        # computed once per name rather than on the decision path.
        self._key_ids: dict[str, int] = {}
        self._receipt_keyid = f"{name}+{self._key_id(name):08x}"

    def _key_id(self, name: str) -> int:
        key_id = self._key_ids.get(name)
        if key_id is None:
            key_id = self._key_ids[name] = self.verifier(name).key_id
        return key_id

    @classmethod
    def generate(cls, name: str) -> AuditKey:
        """A new random key (randomness from ``cryptography``)."""
        seed = Ed25519PrivateKey.generate().private_bytes_raw()
        return cls(name, seed)

    @classmethod
    def from_text(cls, text: str, *, source: str = "key") -> AuditKey:
        """Parse Go's private key text; the key id in the text must match the key."""
        if not text.startswith(PRIVATE_KEY_PREFIX):
            raise KeyFileError(f"{source} does not start with `{PRIVATE_KEY_PREFIX}`")
        name, _, rest = text[len(PRIVATE_KEY_PREFIX) :].partition("+")
        hex_id, _, b64 = rest.partition("+")
        try:
            raw = base64.b64decode(b64, validate=True)
            claimed = int(hex_id, 16)
        except (binascii.Error, ValueError) as exc:
            raise KeyFileError(f"{source} has a malformed key id or base64") from exc
        if len(raw) != _SEED_BYTES + 1 or raw[0] != ALG_ED25519:
            raise KeyFileError(f"{source} is not an Ed25519 private key")
        key = cls(name, raw[1:])
        if key.verifier().key_id != claimed:
            raise KeyFileError(f"{source} has key id {hex_id} that does not match its key")
        return key

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> AuditKey:
        """Load a key file (must be mode 0600 or stricter)."""
        p = Path(path)
        return cls.from_text(_read_private(p), source=f"key file `{p}`")

    def to_text(self) -> str:
        """Go's private key text (secret)."""
        seed = self._private.private_bytes_raw()
        b64 = base64.b64encode(bytes([ALG_ED25519]) + seed).decode()
        return f"{PRIVATE_KEY_PREFIX}{self.name}+{self.verifier().key_id:08x}+{b64}"

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the key file with mode 0600; never overwrites."""
        _write_private(Path(path), self.to_text())

    @property
    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key."""
        return self._public

    def verifier(self, name: str | None = None) -> VerifierKey:
        """The verifier key under ``name`` (default: the deployment name)."""
        return VerifierKey(name or self.name, ALG_ED25519, self._public)

    @property
    def vkey(self) -> str:
        """The deployment vkey text: what an auditor needs to verify everything."""
        return self.verifier().to_text()

    def sign_note(self, text: str, name: str | None = None) -> NoteSignature:
        """Signature line over a note text under key name ``name`` (a shard origin)."""
        key_name = name or self.name
        sig = self._private.sign(text.encode())
        return NoteSignature(key_name, self._key_id(key_name), sig)

    def sign_receipt(self, statement: Mapping[str, Any]) -> dict[str, Any]:
        """A DSSE envelope over the JCS bytes of ``statement`` (AUDIT.md 3.5)."""
        payload = statement_bytes(statement)
        sig = self._private.sign(pae(PAYLOAD_TYPE, payload))
        return make_envelope(payload, self._receipt_keyid, sig)


class WitnessKey:
    """An Ed25519 cosigner key (cosignature/v1, type 0x04) for the internal witness."""

    __slots__ = ("_private", "name")

    def __init__(self, name: str, seed: bytes) -> None:
        check_key_name(name)
        self.name = name
        self._private = Ed25519PrivateKey.from_private_bytes(seed)

    def verifier(self) -> VerifierKey:
        """The cosigner's vkey (type 0x04)."""
        pub = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return VerifierKey(self.name, ALG_COSIGNATURE_V1, pub)

    def cosign(self, text: str, timestamp: int) -> NoteSignature:
        """A cosignature/v1 line: 8-byte big-endian time followed by the Ed25519 signature."""
        sig = self._private.sign(cosignature_message(text, timestamp))
        return NoteSignature(self.name, self.verifier().key_id, struct.pack(">Q", timestamp) + sig)


class MaskKey:
    """A keyed-HMAC masking key with an id, stored as ``MASK+KEY+<kid>+<base64(32 bytes)>``.

    Masking keys live outside the store: a tag can only be recomputed (for an erasure request or
    correlation) by someone holding the key, and destroying the key de-links old tags.
    """

    __slots__ = ("_secret", "kid")

    def __init__(self, kid: str, secret: bytes) -> None:
        if not _KID_RE.match(kid):
            raise KeyFileError(
                f"masking key id `{kid[:40]}` is not lowercase letters, digits and `-`"
            )
        if len(secret) != _SEED_BYTES:
            raise KeyFileError("a masking key is 32 bytes")
        self.kid = kid
        self._secret = secret

    @classmethod
    def generate(cls, kid: str, random_bytes: Any = os.urandom) -> MaskKey:
        """A new random masking key."""
        return cls(kid, random_bytes(_SEED_BYTES))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> MaskKey:
        """Load a masking key file (must be mode 0600 or stricter)."""
        p = Path(path)
        text = _read_private(p)
        if not text.startswith(MASK_KEY_PREFIX):
            raise KeyFileError(f"key file `{p}` does not start with `{MASK_KEY_PREFIX}`")
        kid, _, b64 = text[len(MASK_KEY_PREFIX) :].partition("+")
        try:
            secret = base64.b64decode(b64, validate=True)
        except binascii.Error as exc:
            raise KeyFileError(f"key file `{p}` has malformed base64") from exc
        return cls(kid, secret)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the key file with mode 0600; never overwrites."""
        _write_private(
            Path(path), f"{MASK_KEY_PREFIX}{self.kid}+{base64.b64encode(self._secret).decode()}"
        )

    def tag(self, normalised: bytes) -> str:
        """``hmac-sha256:<kid>:<base64url(HMAC)[:22]>`` (128 bits) of a normalised value."""
        mac = hmac.new(self._secret, normalised, hashlib.sha256).digest()
        return f"hmac-sha256:{self.kid}:{base64.urlsafe_b64encode(mac).decode()[:22]}"
