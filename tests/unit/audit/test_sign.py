"""Key files: Go format, mode 0600 on load, no overwrite; masking keys and tags."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from clearance.audit.sign import AuditKey, MaskKey
from clearance.errors import KeyFileError


def test_key_round_trips_through_a_0600_file(tmp_path: Path) -> None:
    key = AuditKey.generate("audit.example/clearance")
    path = tmp_path / "keys" / "audit.key"
    key.save(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    loaded = AuditKey.load(path)
    assert loaded.vkey == key.vkey
    assert loaded.to_text().startswith("PRIVATE+KEY+audit.example/clearance+")


def test_group_readable_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.key"
    AuditKey.generate("audit.example/clearance").save(path)
    path.chmod(0o640)
    with pytest.raises(KeyFileError, match="readable by others") as info:
        AuditKey.load(path)
    assert info.value.hint == f"run `chmod 600 {path}`"


def test_existing_key_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "audit.key"
    AuditKey.generate("a.example/x").save(path)
    with pytest.raises(KeyFileError, match="already exists"):
        AuditKey.generate("a.example/x").save(path)


def test_missing_and_malformed_key_files(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read"):
        AuditKey.load(tmp_path / "absent.key")
    bad = tmp_path / "bad.key"
    bad.write_text("PRIVATE+KEY+name+00000000+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz\n")
    bad.chmod(0o600)
    with pytest.raises(KeyFileError, match="does not match"):
        AuditKey.load(bad)


def test_mask_key_tags_are_stable_and_keyed(tmp_path: Path) -> None:
    key = MaskKey("m1", bytes(32))
    path = tmp_path / "mask.key"
    key.save(path)
    again = MaskKey.load(path)
    tag = again.tag(b"alice@example.com")
    assert re.fullmatch(r"hmac-sha256:m1:[A-Za-z0-9_-]{22}", tag)
    assert tag == key.tag(b"alice@example.com")
    assert MaskKey("m1", bytes(range(32))).tag(b"alice@example.com") != tag
    with pytest.raises(KeyFileError):
        MaskKey("Bad Id", bytes(32))
