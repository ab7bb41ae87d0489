"""Decision ids are real ULIDs: another ULID library reads them back to the same text and time."""

from __future__ import annotations

import os
import time

from ulid import ULID

from clearance.model.ids import new_session_id, new_ulid


def test_new_ulid_round_trips_through_an_independent_ulid_parser() -> None:
    for _ in range(2000):
        before_ms = time.time_ns() // 1_000_000
        text = new_ulid()
        after_ms = time.time_ns() // 1_000_000
        parsed = ULID.from_str(text)
        assert str(parsed) == text
        assert len(text) == 26
        assert before_ms <= parsed.milliseconds <= after_ms


def test_ulids_sort_by_time_and_do_not_repeat() -> None:
    first = new_ulid()
    time.sleep(0.002)
    later = [new_ulid() for _ in range(5000)]
    assert all(first < text for text in later)
    assert len(set(later)) == len(later)


def test_random_part_uses_every_crockford_character() -> None:
    seen = set("".join(new_ulid()[10:] for _ in range(500)))
    assert seen == set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def test_session_ids_carry_at_least_128_bits() -> None:
    ids = {new_session_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(i.startswith("ses_") and len(i) >= 4 + 22 for i in ids)


def test_a_forked_child_draws_its_own_randomness() -> None:
    new_ulid()  # the parent now holds a partly used block of random bytes
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id's random part and leave
        os.write(write, new_ulid()[10:].encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    assert len(child) == 16
    assert new_ulid()[10:] != child
