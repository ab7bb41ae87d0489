"""Identifiers: sortable decision ids (ULID) and high-entropy session ids.

Every decision gets a ULID, so ``new_ulid`` sits on the decision path. It writes the canonical
ULID text (Crockford base32, upper case, 26 characters: the 128-bit value as 130 bits, two
leading zeros) directly, thirteen 10-bit groups at a time through a 1,024-entry table of character
pairs; ``python-ulid`` parses the same text back (tests check the two agree) but builds an object
per call, which costs several times more.
"""

from __future__ import annotations

import os
import secrets
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = tuple(a + b for a in _CROCKFORD for b in _CROCKFORD)
_SHIFTS = tuple(range(120, -1, -10))


def new_ulid() -> str:
    """A new ULID: 48-bit millisecond time plus 80 random bits, sortable as text."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10))
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])


def new_session_id() -> str:
    """A session id with 192 bits of randomness (AUDIT.md 3.3 needs at least 128)."""
    return "ses_" + secrets.token_urlsafe(24)
