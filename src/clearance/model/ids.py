"""Identifiers: sortable decision ids (ULID) and high-entropy session ids."""

from __future__ import annotations

import secrets

from ulid import ULID


def new_ulid() -> str:
    """A new ULID: 48-bit millisecond time plus 80 random bits, sortable as text."""
    return str(ULID())


def new_session_id() -> str:
    """A session id with 192 bits of randomness (AUDIT.md 3.3 needs at least 128)."""
    return "ses_" + secrets.token_urlsafe(24)
