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


_MAX_SHOWN_PATH = 120


class NotCanonicalError(ValueError):
    """``value`` holds something RFC 8785 cannot write; ``path`` says where, ``fix`` what to send.

    One error for every such value (NaN, Infinity, an integer beyond +/-(2**53 - 1), a lone UTF-16
    surrogate, a non-string object key, a non-JSON type, nesting too deep to walk), so callers
    handle one type instead of whatever the reference encoder or the UTF-8 codec happened to raise.
    """

    def __init__(self, path: str, problem: str, fix: str) -> None:
        self.path = path
        self.problem = problem
        self.fix = fix
        shown = path if len(path) <= _MAX_SHOWN_PATH else path[: _MAX_SHOWN_PATH - 3] + "..."
        super().__init__(f"`{shown}`: {problem}; {fix}")


def canonical_bytes(value: Any) -> bytes:
    """Return the RFC 8785 (JCS) serialisation of ``value``, or raise ``NotCanonicalError``.

    A fast path serialises values made of ASCII-keyed objects, lists, strings, integers in the
    IEEE-754 exact range, finite floats, booleans and null. Its output is identical to JCS: keys
    sort the same when they are ASCII, strings escape the same way, and floats are written with
    ECMAScript's Number-to-String rules from Python's shortest round-trip digits (both pick the
    shortest correctly rounded digit string). Anything else goes through the reference ``rfc8785``
    implementation. ``tests/property/test_canonical_fast_path.py`` checks the two agree.

    Values JCS cannot carry are found by the same walk (the fast path declines them, the reference
    encoder or the UTF-8 encoding raises); only then is the value walked again to name the first
    offending path, so ordinary values pay nothing for the check.
    """
    parts: list[str] = []
    try:
        if _encode(value, parts):
            return "".join(parts).encode("utf-8")
        return rfc8785.dumps(value)
    except (ValueError, TypeError, RecursionError) as exc:
        found: list[NotCanonicalError] = []
        _scrub(value, "", found)
        if found:
            raise found[0] from exc
        raise NotCanonicalError(
            "(the value)", f"it cannot be written as JSON ({exc})", _FIX_TYPE
        ) from exc


def representable(value: Any) -> Any:
    """A copy of ``value`` in which everything JCS cannot carry is replaced by text naming it.

    For evidence about a refused request: the record of the refusal must itself be canonical
    JSON, and it should still show what was sent (``"<not representable: NaN>"``).
    """
    return _scrub(value, "", [])


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


_MAX_SCRUB_DEPTH = 200
_FIX_NUMBER = "send a finite number, or the value as a string"
_FIX_TEXT = "send valid Unicode text; encode binary data as base64"
_FIX_TYPE = "send JSON values only: objects, arrays, strings, numbers, true, false or null"


def _at(path: str, key: str) -> str:
    if key.isidentifier() and key.isascii():
        return f"{path}.{key}" if path else key
    return f"{path}[{key!a}]"


def _marker(what: str) -> str:
    return f"<not representable: {what}>"


def _problem(value: Any) -> tuple[str, str, str] | None:
    """``(what, problem, fix)`` for a leaf JCS cannot carry, or None for one it can."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            shown = ascii(value)[:64]
            return (shown, f"the text {shown} holds a lone UTF-16 surrogate", _FIX_TEXT)
        return None
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        if abs(value) <= _MAX_SAFE_INT:
            return None
        shown = str(value) if value.bit_length() < 200 else f"a {value.bit_length()}-bit integer"
        problem = f"{shown} lies outside +/-(2**53 - 1), the integers JSON numbers carry exactly"
        return (shown, problem, "send it as a string")
    if isinstance(value, float):
        if value != value:
            return ("NaN", "NaN is not a JSON number", _FIX_NUMBER)
        if value in (float("inf"), float("-inf")):
            shown = "Infinity" if value > 0 else "-Infinity"
            return (shown, f"{shown} is not a JSON number", _FIX_NUMBER)
        return None
    kind = type(value).__name__
    return (kind, f"a value of type `{kind}` is not JSON", _FIX_TYPE)


def _scrub(value: Any, path: str, found: list[NotCanonicalError], depth: int = 0) -> Any:
    """``value`` with unrepresentable parts replaced by markers; each one appended to ``found``."""
    if depth > _MAX_SCRUB_DEPTH:
        problem = f"it is nested deeper than {_MAX_SCRUB_DEPTH} levels"
        found.append(NotCanonicalError(path or "(the value)", problem, "send a flatter value"))
        return _marker(f"nested deeper than {_MAX_SCRUB_DEPTH} levels")
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = key if isinstance(key, str) and _problem(key) is None else None
            if name is None:
                shown = ascii(key)[:64]
                where = f"{path}[{shown}]"
                problem = (
                    f"the object key {shown} holds a lone UTF-16 surrogate"
                    if isinstance(key, str)
                    else f"the object key {shown} is of type `{type(key).__name__}`, not a string"
                )
                found.append(NotCanonicalError(where, problem, "use keys of valid Unicode text"))
                name = _marker(f"key {shown}")
            else:
                where = _at(path, name)
            out[name] = _scrub(item, where, found, depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_scrub(item, f"{path}[{i}]", found, depth + 1) for i, item in enumerate(value)]
    bad = _problem(value)
    if bad is None:
        return value
    what, problem, fix = bad
    found.append(NotCanonicalError(path or "(the value)", problem, fix))
    return _marker(what)


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
