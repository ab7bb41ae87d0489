"""Canonical JSON (RFC 8785) and the digests defined over it.

The request digest is defined here, once: approvals, execution tokens, idempotency records, receipts
and the verifier all bind to it, so a second definition anywhere would be a second meaning of the
same security-critical hash.

Three encoders, one output. ``canonical_bytes`` tries them fastest first, and each one declines
(never guesses) what it cannot vouch for:

1. orjson, the optional accelerator (``_accel``: present with the gate, maybe not with a verifier
   installed alone), about 15 times faster than the reference on a decision header. Its output is
   RFC 8785 exactly for the values ``_for_orjson`` admits. Only the exact types dict, list, tuple,
   str, int, bool and None: orjson writes subclasses (``IntEnum``, a ``str`` with its own
   ``__str__``), enums, UUIDs and dataclasses on its own terms. Member names without characters
   beyond U+FFFF: orjson sorts by code point, RFC 8785 by UTF-16 code unit, and the two orders
   differ only between a surrogate pair and U+E000..U+FFFF. Integers beyond +/-(2**53 - 1) make it
   raise (``OPT_STRICT_INTEGER``) instead of writing them. Its string escaping is RFC 8785's: ``"``
   and backslash, the five short escapes, other controls as lowercase ``\\u00xx``, everything else
   (DEL, U+2028, U+2029, all non-ASCII) as raw UTF-8; it refuses lone surrogates. Floats are the
   one thing it writes differently (``1.0``, ``1e+16``, NaN as ``null``), so each finite float is
   handed over already written by ``es_number`` and non-finite ones are declined.
2. ``_encode``, pure Python, for the same exact types, with the standard library's C string
   escaper (the same escaping) and ``es_number`` for floats.
3. The reference ``rfc8785`` for everything else (subclasses, names with characters beyond
   U+FFFF), and for the errors.

``tests/property/test_canonical_fast_path.py`` checks each path byte for byte against
``rfc8785.dumps`` on generated values aimed at every difference listed above.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterable
from typing import Any

import rfc8785

from clearance.formats import _accel

#: The C accelerator in use, ``"orjson <version>"`` or ``"none"`` (reports name it; the bytes are
#: the same either way).
ACCELERATOR = _accel.NAME

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

    The fastest encoder that can vouch for ``value`` writes it (module docstring): orjson when
    present, else the pure-Python fast path, else the reference ``rfc8785``. Values JCS cannot
    carry fall through all three (each declines them or raises); only then is the value walked
    again to name the first offending path, so ordinary values pay nothing for the check.
    """
    try:
        fast = _fast_bytes(value)
        return rfc8785.dumps(value) if fast is None else fast
    except (ValueError, TypeError, RecursionError) as exc:
        found: list[NotCanonicalError] = []
        _scrub(value, "", found)
        if found:
            raise found[0] from exc
        raise NotCanonicalError(
            "(the value)", f"it cannot be written as JSON ({exc})", _FIX_TYPE
        ) from exc


def _fast_bytes(value: Any) -> bytes | None:
    """The bytes of the fastest path that vouches for ``value``, or None to let the reference decide.

    A value nested deeper than these walks recurse is left to the reference too, so its limit (not
    the depth of our helpers' frames) decides what is too deep.
    """
    try:
        if _accel.sorted_dumps is not None:
            ready = _for_orjson(value)
            if ready is not _DECLINED:
                with contextlib.suppress(TypeError):  # beyond 2**53, a lone surrogate, too deep
                    return _accel.sorted_dumps(ready)
        parts: list[str] = []
        if _encode(value, parts):
            return "".join(parts).encode("utf-8")
    except RecursionError:
        pass
    return None


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


_SCALARS = frozenset({str, int, bool, type(None)})
_DECLINED: Any = object()
_FIRST_ASTRAL = "\U00010000"


def _sorts_alike(name: str) -> bool:
    """Code-point order equals UTF-16 code-unit order for names without characters past U+FFFF."""
    return name.isascii() or max(name) < _FIRST_ASTRAL


def _for_orjson(value: Any) -> Any:
    """``value`` with its floats pre-written, or ``_DECLINED`` if orjson cannot be trusted with it.

    Containers are copied only when a float inside them is replaced, so float-free values (every
    audit header) are walked, never rebuilt.
    """
    t = type(value)
    if t is dict:
        for key in value:
            # inline, not _sorts_alike(): a call per member name would double the walk's cost
            if type(key) is not str or not (key.isascii() or max(key) < _FIRST_ASTRAL):
                return _DECLINED
        return _members_for_orjson(value, value.items(), dict)
    if t is list or t is tuple:
        return _members_for_orjson(value, enumerate(value), list)
    if t is float:
        return _accel.fragment(es_number(value)) if value - value == 0 else _DECLINED
    return value if t in _SCALARS else _DECLINED


def _members_for_orjson(
    value: Any, members: Iterable[tuple[Any, Any]], copy_as: Callable[[Any], Any]
) -> Any:
    """``_for_orjson`` of a container, given as ``(slot, item)`` pairs; copied only if changed."""
    copy = None
    for slot, item in members:
        if type(item) in _SCALARS:
            continue
        ready = _for_orjson(item)
        if ready is not item:
            if ready is _DECLINED:
                return _DECLINED
            if copy is None:
                copy = copy_as(value)
            copy[slot] = ready
    return value if copy is None else copy


def _encode(value: Any, out: list[str]) -> bool:
    """Append the JCS text of ``value`` to ``out``; False when the fast path cannot vouch for it.

    Exact types only: a subclass may override ``__str__``, ``__repr__`` or iteration, and the
    reference encoder defines what its bytes are.
    """
    t = type(value)
    if t is str:
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
    if t is int:
        if -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
            out.append(str(value))
            return True
        return False
    if t is float:
        if value - value != 0:  # NaN or an infinity
            return False
        out.append(es_number(value))
        return True
    if t is dict:
        return _encode_object(value, out)
    if t is list or t is tuple:
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            if not _encode(item, out):
                return False
        out.append("]")
        return True
    return False


def _encode_object(value: dict[Any, Any], out: list[str]) -> bool:
    keys = list(value)
    if not all(type(key) is str and _sorts_alike(key) for key in keys):
        return False
    out.append("{")
    for i, key in enumerate(sorted(keys)):
        if i:
            out.append(",")
        out.append(_encode_str(key))
        out.append(":")
        if not _encode(value[key], out):
            return False
    out.append("}")
    return True


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
