"""Signed intents, one-time execution tokens and the Ed25519 key that signs them.

An **intent** is what the agent receives with an APPROVAL decision: an Ed25519 signature over the
canonical JSON of ``{approval_id, request_digest, agent_id, session_id, expires}``. It proves to
the agent (and to anyone holding the public key) which exact call a human is being asked about,
and it is the agent's proof of possession when it later claims the execution token.

An **execution token** is 256 random bits, handed out once after approval and stored only as its
SHA-256. The store redeems it with one conditional ``UPDATE`` that also checks the request
digest, agent, session and expiry, so a token works once, for the approved call only.

Every way a token or intent can be bad raises ``RejectedToken``, an ``InvalidTokenError`` whose
message is the same opaque sentence for all of them; the precise ``reason`` is an attribute meant
for the audit log only (the shape of ``cryptography.fernet.InvalidToken``).

Example::

    key = IntentKey.generate()
    intent = key.sign_intent(IntentClaims("apr_1", "sha256:...", "agent", "ses_x", "2030-..."))
    assert key.verify_intent(intent) == IntentClaims("apr_1", "sha256:...", "agent", "ses_x", "2030-...")
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from clearance.errors import InvalidTokenError, KeyFileError
from clearance.formats.canonical import canonical_bytes, sha256_digest

TOKEN_PREFIX = "clt1_"  # noqa: S105 - public prefix  # noqa: S105 - the public prefix of every token
INTENT_PREFIX = "cli1."
_TOKEN_BYTES = 32
_TOKEN_RE = re.compile(r"^clt1_[A-Za-z0-9_-]{43}$")
_INTENT_MAX = 4096


class RejectedToken(InvalidTokenError):  # noqa: N818 - reads as "raise RejectedToken(reason)"
    """An invalid token or intent; ``reason`` is for the audit log, never for the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_token() -> str:
    """A fresh execution token: ``clt1_`` and 256 random bits, URL-safe base64."""
    return TOKEN_PREFIX + _b64e(secrets.token_bytes(_TOKEN_BYTES))


def token_hash(token: str) -> str:
    """The stored form of a token; raises ``RejectedToken("malformed")`` for a malformed one."""
    if not _TOKEN_RE.fullmatch(token):
        raise RejectedToken("malformed")
    return sha256_digest(token.encode("ascii"))


@dataclass(frozen=True, slots=True)
class IntentClaims:
    """What a signed intent names: the approval, the exact call and who may claim its token."""

    approval_id: str
    request_digest: str
    agent_id: str
    session_id: str
    expires: str


class IntentKey:
    """The Ed25519 key of one gate that signs intents and break-glass records."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        raw = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id = sha256_digest(raw)[7:23]

    @classmethod
    def generate(cls) -> IntentKey:
        """A new random key (tests, or first start before it is written to a file)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load_or_create(cls, path: Path) -> IntentKey:
        """Load the PEM key at ``path``; create it with mode 0600 when it does not exist.

        Refuses a key file that group or others can read: whoever reads it can mint intents and
        forge break-glass records.
        """
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return cls._load(path)
        except OSError as exc:
            raise KeyFileError(f"cannot create the key file `{path}`: {exc.strerror}") from exc
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        return cls(key)

    @classmethod
    def _load(cls, path: Path) -> IntentKey:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(
                f"the key file `{path}` is readable by others (mode {stat.S_IMODE(mode):o})",
                hint=f"run `chmod 600 {path}`",
            )
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise KeyFileError(f"cannot read the key file `{path}`: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError(f"the key file `{path}` does not hold an Ed25519 private key")
        return cls(key)

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The verifying half, for agents and auditors."""
        return self._key.public_key()

    def sign(self, payload: dict[str, Any]) -> str:
        """``ed25519:<key id>:<signature>`` over the canonical JSON of ``payload``."""
        return f"ed25519:{self.key_id}:{_b64e(self._key.sign(canonical_bytes(payload)))}"

    def verify(self, payload: dict[str, Any], signature: str) -> None:
        """Raise ``RejectedToken`` unless ``signature`` is this key's signature over ``payload``."""
        scheme, _, rest = signature.partition(":")
        key_id, _, sig = rest.partition(":")
        if scheme != "ed25519" or key_id != self.key_id:
            raise RejectedToken("unknown-signing-key")
        try:
            self.public_key.verify(_b64d(sig), canonical_bytes(payload))
        except (InvalidSignature, binascii.Error, ValueError) as exc:
            raise RejectedToken("bad-signature") from exc

    def sign_intent(self, claims: IntentClaims) -> str:
        """``cli1.<claims>.<signature>``, all URL-safe base64."""
        body = canonical_bytes({"v": 1, **asdict(claims)})
        return f"{INTENT_PREFIX}{_b64e(body)}.{_b64e(self._key.sign(body))}"

    def verify_intent(self, intent: str) -> IntentClaims:
        """The claims of a genuine intent signed by this key; ``RejectedToken`` otherwise."""
        if len(intent) > _INTENT_MAX or not intent.startswith(INTENT_PREFIX):
            raise RejectedToken("malformed-intent")
        body_text, _, sig_text = intent[len(INTENT_PREFIX) :].partition(".")
        try:
            body, sig = _b64d(body_text), _b64d(sig_text)
        except (binascii.Error, ValueError) as exc:
            raise RejectedToken("malformed-intent") from exc
        try:
            self.public_key.verify(sig, body)
        except InvalidSignature as exc:
            raise RejectedToken("bad-intent-signature") from exc
        data = json.loads(body)
        if not isinstance(data, dict) or data.pop("v", None) != 1:
            raise RejectedToken("unknown-intent-version")
        try:
            return IntentClaims(**data)
        except TypeError as exc:
            raise RejectedToken("malformed-intent") from exc
