"""Canonical JSON (RFC 8785) and the digests defined over it.

The request digest is defined here, once: approvals, execution tokens, idempotency records, receipts
and the verifier all bind to it, so a second definition anywhere would be a second meaning of the
same security-critical hash.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import rfc8785

DIGEST_PREFIX = "sha256:"

REQUEST_DIGEST_FIELDS = ("agent_id", "session_id", "tool", "action", "args", "target")


def canonical_bytes(value: Any) -> bytes:
    """Return the RFC 8785 (JCS) serialisation of ``value``.

    A fast path serialises values made of ASCII-keyed objects, lists, strings, integers in the
    IEEE-754 exact range, finite floats, booleans and null. Its output is identical to JCS: keys
    sort the same when they are ASCII, strings escape the same way, and floats are written with
    ECMAScript's Number-to-String rules from Python's shortest round-trip digits (both pick the
    shortest correctly rounded digit string). Anything else goes through the reference ``rfc8785``
    implementation. ``tests/property/test_canonical_fast_path.py`` checks the two agree.
    """
    parts: list[str] = []
    if _encode(value, parts):
        return "".join(parts).encode("utf-8")
    return rfc8785.dumps(value)


_MAX_SAFE_INT = 2**53 - 1
_encode_str = json.JSONEncoder(ensure_ascii=False).encode


def es_number(x: float) -> str:
    """ECMAScript ``Number.prototype.toString`` for a finite float (RFC 8785 section 3.2.2.3)."""
    if x == 0:
        return "0"
    if x.is_integer() and abs(x) <= _MAX_SAFE_INT:
        return str(int(x))
    text = repr(x)
    sign = ""
    if text[0] == "-":
        sign, text = "-", text[1:]
    mantissa, _, exp_text = text.partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    # value = 0.digits * 10**n, i.e. n is where the decimal point sits relative to digits.
    n = len(whole.lstrip("0")) + (int(exp_text) if exp_text else 0)
    if not whole.lstrip("0"):
        n = -(len(frac) - len(frac.lstrip("0"))) + (int(exp_text) if exp_text else 0)
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    exponent = n - 1
    head = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{sign}{head}e{'+' if exponent >= 0 else '-'}{abs(exponent)}"


def _encode(value: Any, out: list[str]) -> bool:
    """Append the JCS text of ``value`` to ``out``; False when the fast path cannot vouch for it."""
    if isinstance(value, str):
        out.append(_encode_str(value))
        return True
    if value is None:
        out.append("null")
        return True
    if value is True:
        out.append("true")
        return True
    if value is False:
        out.append("false")
        return True
    if isinstance(value, int):
        if -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
            out.append(str(value))
            return True
        return False
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return False
        out.append(es_number(value))
        return True
    if isinstance(value, dict):
        out.append("{")
        first = True
        for key in sorted(value):
            if not isinstance(key, str) or not key.isascii():
                return False
            if not first:
                out.append(",")
            first = False
            out.append(_encode_str(key))
            out.append(":")
            if not _encode(value[key], out):
                return False
        out.append("}")
        return True
    if isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            if not _encode(item, out):
                return False
        out.append("]")
        return True
    return False


def sha256_digest(data: bytes) -> str:
    """``sha256:<lowercase hex>`` of ``data``."""
    return DIGEST_PREFIX + hashlib.sha256(data).hexdigest()


def parse_digest(text: str) -> bytes:
    """Return the 32 raw bytes of a ``sha256:<hex>`` digest, or raise ``ValueError``."""
    if not text.startswith(DIGEST_PREFIX):
        raise ValueError(f"digest `{text[:20]}` does not start with `sha256:`")
    raw = bytes.fromhex(text[len(DIGEST_PREFIX) :])
    if len(raw) != hashlib.sha256().digest_size:
        raise ValueError("digest is not 32 bytes")
    return raw


def request_digest(
    *,
    agent_id: str,
    session_id: str,
    tool: str,
    action: str,
    args: dict[str, Any],
    target: str | None,
) -> str:
    """DESIGN.md section 2: SHA-256 over JCS of ``{agent_id, session_id, tool, action, args, target}``."""
    body = {
        "agent_id": agent_id,
        "session_id": session_id,
        "tool": tool,
        "action": action,
        "args": args,
        "target": target,
    }
    return sha256_digest(canonical_bytes(body))
