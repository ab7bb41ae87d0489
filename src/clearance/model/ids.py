"""Identifiers: sortable decision ids (ULID) and high-entropy session ids.

Every decision gets a ULID, so ``new_ulid`` sits on the decision path. It writes the canonical
ULID text (Crockford base32, upper case, 26 characters: the 128-bit value as 130 bits, two
leading zeros) directly, thirteen 10-bit groups at a time through a 1,024-entry table of character
pairs; ``python-ulid`` parses the same text back (tests check the two agree) but builds an object
per call, which costs several times more. The random bits are drawn from the operating system in
blocks per thread: every ``os.urandom`` call releases the GIL, and under many deciding threads
each release costs a wait to get it back.
"""

from __future__ import annotations

import os
import secrets
import threading
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = tuple(a + b for a in _CROCKFORD for b in _CROCKFORD)
_SHIFTS = tuple(range(120, -1, -10))


_BLOCK = 4096
_random = threading.local()


def _forget_block() -> None:
    """A forked child must not reuse its parent's unused random bytes (the ids would repeat)."""
    global _random
    _random = threading.local()


os.register_at_fork(after_in_child=_forget_block)


def _random80() -> int:
    """80 bits from this thread's block of operating-system randomness (refilled when used up)."""
    block: bytes | None = getattr(_random, "block", None)
    at: int = getattr(_random, "at", _BLOCK)
    if block is None or at + 10 > len(block):
        block, at = os.urandom(_BLOCK), 0
        _random.block = block
    _random.at = at + 10
    return int.from_bytes(block[at : at + 10])


def new_ulid() -> str:
    """A new ULID: 48-bit millisecond time plus 80 random bits, sortable as text."""
    value = (time.time_ns() // 1_000_000) << 80 | _random80()
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])


def new_session_id() -> str:
    """A session id with 192 bits of randomness (AUDIT.md 3.3 needs at least 128)."""
    return "ses_" + secrets.token_urlsafe(24)
