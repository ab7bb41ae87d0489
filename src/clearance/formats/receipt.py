"""Receipt v1: a DSSE envelope over the JCS bytes of a receipt statement, signed with Ed25519.

Example::

    >>> from clearance.formats.receipt import build_statement, verify_receipt
    >>> statement = build_statement(log=..., index=1, leaf=..., decision_id=..., ...)  # doctest: +SKIP
    >>> verify_receipt(envelope, [deployment_vkey])                                   # doctest: +SKIP

The signature covers DSSE's pre-authentication encoding (PAE) of the exact payload bytes, so a
verifier needs no canonicaliser to check it; it then checks that the payload is the canonical form
of the statement it parses, so one statement has exactly one signed form. ``keyid`` in the envelope
is a hint only: every trusted key is tried.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from typing import Any

from clearance.formats.canonical import canonical_bytes
from clearance.formats.entry import EntryError, check_canonical, loads_strict
from clearance.formats.note import ALG_ED25519, NoteError, VerifierKey

PAYLOAD_TYPE = "application/vnd.clearance.receipt.v1+json"
STATEMENT_TYPE = "clearance.dev/receipt/v1"
OUTCOMES = frozenset({"PERMIT", "DENY", "APPROVAL", "SILENCE"})
MAX_ENVELOPE_BYTES = 64 * 1024

_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}\Z")
_TIME_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z\Z")
_STRING_FIELDS = ("log", "decision_id", "rule")
_DIGEST_FIELDS = ("leaf", "request_digest", "policy")


class ReceiptError(ValueError):
    """A receipt envelope or statement is malformed or its signature does not verify."""


class ReceiptSignatureError(ReceiptError):
    """The receipt is well-formed but no trusted signature covers it, or its signed bytes are not
    the canonical statement: evidence of forgery or tampering rather than of bad input."""


def build_statement(
    *,
    log: str,
    index: int,
    leaf: str,
    decision_id: str,
    request_digest: str,
    policy: str,
    outcome: str,
    rule: str,
    shadow: bool,
    time: str,
    approval_id: str | None = None,
    expires: str | None = None,
) -> dict[str, Any]:
    """The receipt statement of AUDIT.md 3.5; ``approval_id`` and ``expires`` only for APPROVAL."""
    statement: dict[str, Any] = {
        "_type": STATEMENT_TYPE,
        "log": log,
        "index": index,
        "leaf": leaf,
        "decision_id": decision_id,
        "request_digest": request_digest,
        "policy": policy,
        "outcome": outcome,
        "rule": rule,
        "shadow": shadow,
        "time": time,
    }
    if outcome == "APPROVAL":
        if approval_id is None or expires is None:
            raise ReceiptError("an APPROVAL receipt needs `approval_id` and `expires`")
        statement["approval_id"] = approval_id
        statement["expires"] = expires
    validate_statement(statement)
    return statement


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding (decimal byte lengths, single spaces)."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def statement_bytes(statement: Mapping[str, Any]) -> bytes:
    """The JCS bytes that go into the envelope payload."""
    return canonical_bytes(dict(statement))


def make_envelope(payload: bytes, keyid: str, signature: bytes) -> dict[str, Any]:
    """A DSSE envelope dict with standard base64, as clearance emits it."""
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": keyid, "sig": base64.b64encode(signature).decode()}],
    }


def _b64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise ReceiptError(f"envelope `{what}` is not a string")
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ReceiptError(f"envelope `{what}` is not base64") from exc


def validate_statement(statement: Mapping[str, Any]) -> None:
    """Field presence and types of a v1 statement; raise ``ReceiptError`` naming the field."""
    if statement.get("_type") != STATEMENT_TYPE:
        raise ReceiptError(f"statement `_type` is not `{STATEMENT_TYPE}`")
    for key in _STRING_FIELDS:
        if not isinstance(statement.get(key), str):
            raise ReceiptError(f"statement field `{key}` is missing or not a string")
    for key in _DIGEST_FIELDS:
        value = statement.get(key)
        if not (isinstance(value, str) and _DIGEST_RE.match(value)):
            raise ReceiptError(f"statement field `{key}` is not a `sha256:<hex>` digest")
    index = statement.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise ReceiptError("statement field `index` is not a non-negative integer")
    if statement.get("outcome") not in OUTCOMES:
        raise ReceiptError("statement field `outcome` is not PERMIT, DENY, APPROVAL or SILENCE")
    if not isinstance(statement.get("shadow"), bool):
        raise ReceiptError("statement field `shadow` is not a boolean")
    time = statement.get("time")
    if not (isinstance(time, str) and _TIME_RE.match(time)):
        raise ReceiptError("statement field `time` is not RFC 3339 UTC with microseconds")
    extra = set(statement) - {
        "_type",
        "index",
        "outcome",
        "shadow",
        "time",
        *_STRING_FIELDS,
        *_DIGEST_FIELDS,
    }
    if statement["outcome"] == "APPROVAL":
        if extra != {"approval_id", "expires"} or not all(
            isinstance(statement[k], str) for k in extra
        ):
            raise ReceiptError("an APPROVAL statement needs string `approval_id` and `expires`")
    elif extra:
        raise ReceiptError(f"statement has unknown fields `{', '.join(sorted(extra))}`")


def parse_envelope(data: bytes | Mapping[str, Any]) -> tuple[bytes, list[tuple[str, bytes]]]:
    """Return ``(payload, [(keyid, signature), ...])`` of a well-formed receipt envelope."""
    if isinstance(data, bytes | bytearray):
        if len(data) > MAX_ENVELOPE_BYTES:
            raise ReceiptError("envelope is larger than 64 KiB")
        try:
            env = loads_strict(bytes(data))
        except EntryError as exc:
            raise ReceiptError(f"envelope is not valid JSON: {exc}") from exc
    else:
        env = dict(data)
    if not isinstance(env, dict):
        raise ReceiptError("envelope is not a JSON object")
    if env.get("payloadType") != PAYLOAD_TYPE:
        raise ReceiptError(f"envelope `payloadType` is not `{PAYLOAD_TYPE}`")
    payload = _b64(env.get("payload"), "payload")
    sigs = env.get("signatures")
    if not isinstance(sigs, list) or not sigs:
        raise ReceiptError("envelope has no signatures")
    out: list[tuple[str, bytes]] = []
    for s in sigs:
        if not isinstance(s, dict):
            raise ReceiptError("envelope signature is not an object")
        keyid = s.get("keyid", "")
        out.append((keyid if isinstance(keyid, str) else "", _b64(s.get("sig"), "sig")))
    return payload, out


def verify_receipt(data: bytes | Mapping[str, Any], keys: Iterable[VerifierKey]) -> dict[str, Any]:
    """Verify a receipt envelope against trusted Ed25519 keys and return its statement.

    Raises ``ReceiptError`` if no signature verifies with any trusted key, or if the payload is not
    a canonical, complete v1 statement.
    """
    payload, sigs = parse_envelope(data)
    message = pae(PAYLOAD_TYPE, payload)
    trusted = [k for k in keys if k.alg == ALG_ED25519]
    if not any(_verifies(k, message, sig) for k in trusted for _, sig in sigs):
        hints = ", ".join(kid for kid, _ in sigs) or "none"
        raise ReceiptSignatureError(
            f"no receipt signature verifies with a trusted key (key id hints: {hints})"
        )
    try:
        statement = loads_strict(payload)
        if not isinstance(statement, dict):
            raise ReceiptError("receipt statement is not a JSON object")
        check_canonical(statement, payload)
    except EntryError as exc:
        raise ReceiptSignatureError(f"signed receipt statement: {exc}") from exc
    validate_statement(statement)
    return statement


def _verifies(key: VerifierKey, message: bytes, signature: bytes) -> bool:
    try:
        key.verify(message, signature)
    except NoteError:
        return False
    return True
