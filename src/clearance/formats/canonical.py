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

    A fast path serialises values made only of ASCII-keyed objects, lists, strings, integers in the
    IEEE-754 exact range, booleans and null with the standard library, whose output is then
    identical to JCS; anything else (floats, non-ASCII keys whose UTF-16 order may differ) goes
    through the reference ``rfc8785`` implementation.
    """
    if _fast_path_safe(value):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
            "utf-8"
        )
    return rfc8785.dumps(value)


_MAX_SAFE_INT = 2**53 - 1


def _fast_path_safe(value: Any) -> bool:
    if value is None or value is True or value is False:
        return True
    if isinstance(value, str):
        return True
    if isinstance(value, int):
        return -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT
    if isinstance(value, dict):
        return all(
            isinstance(k, str) and k.isascii() and _fast_path_safe(v) for k, v in value.items()
        )
    if isinstance(value, list | tuple):
        return all(_fast_path_safe(v) for v in value)
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
