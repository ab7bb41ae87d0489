"""The append-only audit shard: one writer at a time, group commit, audit-or-refuse.

Example::

    >>> log = AuditLog(storage, key, "audit.acme.example/clearance/node/2026", clock.now)  # doctest: +SKIP
    >>> entry = log.append("decision", {"decision_id": did, "outcome": "PERMIT"}, payload)  # doctest: +SKIP
    >>> entry.index, entry.leaf_hash                                                         # doctest: +SKIP

How it works and what it guarantees:

* Callers mask and serialise their payload in their own thread, then join the queue of writers.
  The caller at the head of the queue leads: it takes everything queued (no timer: an idle log
  commits a lone entry at once, in the caller's own thread; a busy one shares each commit among
  every waiting caller), assigns ``index`` and ``prev``, computes leaf hashes and the compact
  range, and stores the batch in one durable transaction. It then hands the lead to the next
  queued caller, before waking the callers of its batch, so the next commit starts as early as
  possible. Only the leader touches the shard head: one writer at a time, as with a dedicated
  appender thread, without two thread switches per commit.
* ``append`` returns only after that transaction committed. If the commit fails every waiter of
  the batch gets ``AuditWriteError`` and the in-memory head is rolled back, so nothing that was
  acknowledged can be lost and nothing unacknowledged is counted. The gate answers SILENCE.
* A checkpoint is signed inside the batch transaction when the tree grew and 1 s passed or 1,024
  entries were added since the last one; when the log falls idle, a timer thread joins the queue
  as a writer when that second is up. ``checkpoint_now`` forces one (used before serving a proof).
* The appender is the only signer of its shard, so two roots for one size are never published.
* **Cross-shard anchors** (AUDIT.md 3.11). When several shards share one database (replicas on
  PostgreSQL), the appender appends an ``anchor`` entry at most every ``anchor_interval`` (one
  minute) while its shard is in use, naming the latest signed checkpoint ``(log, size, root)`` of
  every other shard of the deployment. Any shard then reveals the others: the verifier checks that
  each anchored shard is still in the store and that its entries hash to the anchored root, so a
  deleted, truncated or forked shard is caught even if the registry row was removed too. Before
  anchoring, the appender checks each peer checkpoint's signature and its consistency with the
  peer checkpoint it last accepted (``_check_peer``); a violation is logged as critical and still
  anchored, so the verifier sees it. An idle shard anchors nothing (otherwise two idle replicas
  would keep anchoring each other's anchors for ever).
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import orjson

from clearance.audit.sign import AuditKey
from clearance.audit.storage import AuditStorage, CheckpointRow, ShardHead, StoredEntry
from clearance.errors import AuditWriteError, StoreError
from clearance.formats.canonical import canonical_bytes, es_number
from clearance.formats.checkpoint import Checkpoint, CheckpointError, verify_checkpoint
from clearance.formats.entry import (
    MAX_HEADER_BYTES,
    RESERVED_FIELDS,
    SALT_BYTES,
    EntryError,
    build_header,
    format_time,
    header_bytes,
    payload_commitment,
)
from clearance.formats.merkle import CompactRange, consistency_path, inclusion_path, leaf_hash
from clearance.formats.note import add_signatures
from clearance.formats.proof import ConsistencyProof, InclusionProof
from clearance.model.ids import new_ulid

CHECKPOINT_INTERVAL = timedelta(seconds=1)
ANCHOR_INTERVAL = timedelta(minutes=1)
CHECKPOINT_ENTRIES = 1024
MAX_BATCH = 4096
SALTS_PER_DRAW = 128
_KIND_RE = re.compile(r"[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)*\Z")
_SEGMENT_RE = re.compile(r"[a-z0-9.-]+\Z")

RetentionFor = Callable[[str, Mapping[str, Any]], tuple[str, int]]
_log = logging.getLogger(__name__)
_TIMER_RETRY_S = 1.0
"""How soon the idle timer tries again after its clock failed."""


class Redactor(Protocol):
    """Masks a payload before anything is stored (``clearance.audit.redact.Redactor``)."""

    def redact(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Return a masked copy."""
        ...


@dataclass(frozen=True, slots=True)
class AppendedEntry:
    """A durably committed entry: what a receipt needs (``leaf_hash`` is ``sha256:<hex>``)."""

    index: int
    leaf_hash: str
    log: str
    time: str


_MAX_SAFE_INT = 2**53 - 1
_PLAIN = frozenset({str, bool, type(None)})  # exact types orjson always writes as RFC 8785 does


def _orjson_safe(value: Any) -> bool:
    """True when orjson with sorted keys writes exactly RFC 8785 bytes for ``value``.

    That holds for ASCII member names (byte order equals UTF-16 order), strings (orjson escapes
    exactly JSON's minimal set, with lowercase hex, like RFC 8785), integers in the IEEE-754 exact
    range, booleans and null. A float is admitted only when orjson's text for it equals the
    ECMAScript form RFC 8785 prescribes (``120.5`` is, ``1e30`` is not: RFC 8785 wants ``1e+30``);
    orjson writes a float the same way wherever it sits, so the check on the value alone decides.
    ``tests/unit/audit/test_log.py`` checks the equivalence on every control character.
    """
    t = type(value)
    if value is None or t is str or t is bool:
        return True
    if t is int:
        return bool(-_MAX_SAFE_INT <= value <= _MAX_SAFE_INT)
    if t is dict:
        for k, v in value.items():
            if type(k) is not str or not k.isascii():
                return False
            # INVARIANT: inline for the scalars most members hold; the call is for the rest.
            if type(v) not in _PLAIN and not _orjson_safe(v):
                return False
        return True
    if t is list:
        return all(type(v) in _PLAIN or _orjson_safe(v) for v in value)
    if t is float:
        return math.isfinite(value) and orjson.dumps(value) == es_number(value).encode()
    return False


def _jcs(value: Any) -> bytes:
    """RFC 8785 bytes; orjson where it is provably identical (``_orjson_safe``)."""
    if _orjson_safe(value):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return canonical_bytes(value)


def _keep_default(kind: str, fields: Mapping[str, Any]) -> tuple[str, int]:  # noqa: ARG001
    return ("default", 180)


class _Pending:
    """One queued entry (or, when ``kind`` is None, a checkpoint request) and its waiter's lock.

    The lock is held from creation and released exactly once per wake-up: when the leader is
    done with it (``done``; then ``result`` or ``error`` says how it went), or when its caller is
    handed the lead (``lead``).
    """

    __slots__ = (
        "body",
        "commit",
        "done",
        "error",
        "fast",
        "fields",
        "force",
        "kind",
        "lead",
        "lock",
        "next",
        "result",
        "retention",
        "salt",
    )

    def __init__(
        self,
        kind: str | None,
        fields: dict[str, Any],
        *,
        fast: bool = True,
        body: bytes | None = None,
        salt: bytes = b"",
        commit: bytes = b"",
        retention: tuple[str, int] | None = None,
        force: bool = False,
    ) -> None:
        self.kind = kind
        self.fields = fields
        self.fast = fast
        self.body = body
        self.salt = salt
        self.commit = commit
        self.retention = retention
        self.force = force
        self.lead = False
        self.done = False
        self.next: _Pending | None = None
        self.result: AppendedEntry | None = None
        self.error: Exception | None = None
        self.lock = threading.Lock()
        self.lock.acquire()


class AuditLog:
    """One shard's append-only log (see the module docstring)."""

    def __init__(
        self,
        storage: AuditStorage,
        key: AuditKey,
        origin: str,
        clock_now: Callable[[], datetime],
        redactor: Redactor | None = None,
        *,
        retention_for: RetentionFor = _keep_default,
        random_bytes: Callable[[int], bytes] = os.urandom,
        anchor_interval: timedelta | None = ANCHOR_INTERVAL,
    ) -> None:
        prefix = key.name + "/"
        parts = origin[len(prefix) :].split("/") if origin.startswith(prefix) else []
        if len(parts) != 2 or not all(_SEGMENT_RE.match(p) for p in parts):
            raise AuditWriteError(
                f"shard origin `{origin}` is not `{key.name}/<replica>/<period>`",
                hint="replica and period use lowercase letters, digits, `.` and `-`",
            )
        self.origin = origin
        self._storage = storage
        self._key = key
        self._now = clock_now
        self._redactor = redactor
        self._retention_for = retention_for
        self._random = random_bytes
        self._salts: list[bytes] = []
        # INVARIANT: ``_writers`` and ``_leading`` change only under ``_mutex``; the shard head
        # (size, head, compact range, checkpoint and anchor state) only in the leader's thread.
        self._mutex = threading.Lock()
        self._writers: deque[_Pending] = deque()
        self._leading = False
        self._closed = False
        self._wake = threading.Event()  # the head changed while the timer had nothing due
        self._timer_due = False
        now = clock_now()
        try:
            head = ShardHead._make(
                storage.open_shard(
                    origin,
                    replica=parts[0],
                    period=parts[1],
                    vkey=key.vkey,
                    created_at=format_time(now),
                )
            )
            latest = storage.latest_checkpoint(origin)
        except StoreError as exc:
            raise AuditWriteError(f"cannot open audit shard `{origin}`: {exc}") from exc
        self._epoch = head.epoch
        self._size = head.size
        self._head = head.head
        self._cr = CompactRange.from_bytes(head.size, head.compact)
        self._cp_size = 0 if latest is None else CheckpointRow._make(latest).size
        self._cp_time = now
        self.anchor_interval = anchor_interval
        """How often a shard in use anchors its peers (``None``: never); may be changed live."""
        self._anchor_time = now
        # peer origin -> compact range of its leaves up to the last checkpoint found consistent
        self._peers: dict[str, CompactRange] = {}
        self._in_use = False  # entries other than anchors since the last anchor
        if self._size == 0:
            self.append(
                "genesis",
                {"vkey": key.vkey, "replica": parts[0], "period": parts[1], "previous": None},
                None,
            )
        self._timer = threading.Thread(
            target=self._run_timer, name=f"audit-timer:{origin}", daemon=True
        )
        self._timer.start()

    # -- callers -------------------------------------------------------------------------------

    def _prepare(
        self, kind: str, header_fields: Mapping[str, Any], payload: Mapping[str, Any] | None
    ) -> _Pending:
        if not _KIND_RE.match(kind):
            raise EntryError(f"entry kind `{kind[:40]}` is not a dotted lowercase name")
        clash = RESERVED_FIELDS.intersection(header_fields)
        if clash:
            raise EntryError(f"header fields `{', '.join(sorted(clash))}` are set by the log")
        fields = dict(header_fields)
        if "id" not in fields:
            fields["id"] = new_ulid()
        fast = _orjson_safe(fields)
        if not fast:
            canonical_bytes(fields)  # raise for unserialisable fields here, not in the batch
        if payload is None:
            return _Pending(kind, fields, fast=fast)
        masked = self._redactor.redact(payload) if self._redactor is not None else dict(payload)
        body = _jcs(masked)
        salt = self._salt()
        return _Pending(
            kind,
            fields,
            fast=fast,
            body=body,
            salt=salt,
            commit=payload_commitment(salt, body),
            retention=self._retention_for(kind, fields),
        )

    def _salt(self) -> bytes:
        """32 fresh random bytes for one payload commitment, never handed out twice.

        Salts are drawn from ``random_bytes`` ``SALTS_PER_DRAW`` at a time: one system call per
        draw instead of per entry. That matters under load because a system call gives up the
        GIL and getting it back means waiting behind every runnable thread. ``list.pop`` and
        ``list.extend`` are atomic, so concurrent callers never share a salt.
        """
        try:
            return self._salts.pop()
        except IndexError:
            block = self._random(SALT_BYTES * SALTS_PER_DRAW)
            salts = [block[i : i + SALT_BYTES] for i in range(0, len(block), SALT_BYTES)]
            salt = salts.pop()
            self._salts.extend(salts)
            return salt

    def append(
        self,
        kind: str,
        header_fields: Mapping[str, Any],
        payload: Mapping[str, Any] | None,
    ) -> AppendedEntry:
        """Append one entry and block until it is durably committed.

        Raises ``AuditWriteError`` if the batch could not be committed (the entry is then not in
        the log) and ``EntryError`` for a malformed kind or header field (a caller bug).
        """
        return self.append_many([(kind, header_fields, payload)])[0]

    def append_many(
        self, items: Sequence[tuple[str, Mapping[str, Any], Mapping[str, Any] | None]]
    ) -> list[AppendedEntry]:
        """Append several entries (consecutive unless other callers interleave); all or error."""
        pending = [self._prepare(k, f, p) for k, f, p in items]
        self._submit(pending)
        out = []
        for p in pending:
            if p.error is not None:
                raise p.error
            if p.result is None:  # the leader always sets one of the two
                raise AuditWriteError("audit append ended without a result")
            out.append(p.result)
        return out

    def _submit(self, pending: list[_Pending], *, closing: bool = False) -> None:
        """Queue ``pending`` and return once each item is committed or refused.

        The caller leads when nobody does, and whenever a finishing leader hands it the lead.
        """
        with self._mutex:
            if self._closed and not closing:
                raise AuditWriteError(f"audit log `{self.origin}` is closed")
            self._writers.extend(pending)
            lead = not self._leading
            self._leading = True
        if lead:
            self._lead()
        for p in pending:
            while not p.done:
                p.lock.acquire()
                if p.lead:
                    p.lead = False
                    self._lead()
            if p.next is not None:
                p.next.lock.release()  # wake the next caller of the batch (see ``_lead``)

    def _lead(self) -> None:
        """Commit everything queued (up to ``MAX_BATCH``), pass the lead on, wake the batch."""
        with self._mutex:
            writers = self._writers
            batch = [writers.popleft() for _ in range(min(len(writers), MAX_BATCH))]
        try:
            self._commit(batch)
        except Exception as exc:  # noqa: BLE001 - fail closed, and never strand the batch's callers
            # ``_commit`` answers storage failures itself; this is anything else (the clock, the
            # anchor's peers, a bug): every caller of the batch is refused, none is left waiting.
            _log.exception("audit batch of `%s` failed before it was stored", self.origin)
            error = AuditWriteError(
                f"audit entries could not be committed to `{self.origin}`: {exc}",
                hint="the decision is SILENCE; check the gate's clock and the audit database",
            )
            for p in batch:
                p.result = None
                p.error = error
        finally:
            with self._mutex:
                if self._writers:
                    successor = self._writers[0]
                    successor.lead = True
                    successor.lock.release()
                else:
                    self._leading = False
            # The callers of the batch wake one after another, each woken by the one before
            # (``_submit``): woken all at once they would all contend for the GIL together.
            for p, after in zip(batch, [*batch[1:], None], strict=True):
                p.next = after
                p.done = True
            if batch:
                batch[0].lock.release()
        if not self._timer_due and (self._size > self._cp_size or self._in_use):
            self._wake.set()

    def checkpoint_now(self) -> bytes | None:
        """Sign a checkpoint now if the tree grew; return the latest checkpoint note (or None)."""
        req = _Pending(None, {}, force=True)
        self._submit([req])
        if req.error is not None:
            raise req.error
        latest = self._storage.latest_checkpoint(self.origin)
        return None if latest is None else CheckpointRow._make(latest).note

    def _covering_checkpoint(self, size: int) -> CheckpointRow:
        latest = self._storage.latest_checkpoint(self.origin)
        if latest is None or latest[0] < size:
            self.checkpoint_now()
            latest = self._storage.latest_checkpoint(self.origin)
        if latest is None or latest[0] < size:
            raise AuditWriteError(f"no checkpoint of `{self.origin}` covers size {size}")
        return CheckpointRow._make(latest)

    def inclusion_proof(self, index: int) -> str:
        """A c2sp tlog-proof for entry ``index`` (with its header in ``extra``)."""
        cp = self._covering_checkpoint(index + 1)
        hashes = self._storage.leaf_hashes(self.origin, 0, cp.size)
        entry = StoredEntry._make(self._storage.entries(self.origin, index, index + 1)[0])
        if entry.header is None:
            raise AuditWriteError(f"entry {index} is pruned to its hash; no proof with its header")
        path = inclusion_path(index, hashes)
        return InclusionProof(index, tuple(path), cp.note, extra=entry.header).to_text()

    def consistency_proof(self, old_size: int) -> str:
        """A consistency proof from ``old_size`` to a fresh checkpoint (tlog-witness layout)."""
        self.checkpoint_now()
        cp = self._covering_checkpoint(max(old_size, 1))
        hashes = self._storage.leaf_hashes(self.origin, 0, cp.size)
        path = consistency_path(old_size, hashes) if old_size else []
        return ConsistencyProof(old_size, tuple(path), cp.note).to_text()

    @property
    def size(self) -> int:
        """Committed entries (as seen by the last leader)."""
        return self._size

    @property
    def storage(self) -> AuditStorage:
        """The storage this log appends to, for readers (exports, reviews) in the same process."""
        return self._storage

    def close(self) -> None:
        """Refuse new entries, commit the queued ones, and leave them under a signed checkpoint.

        The storage stays open.
        """
        with self._mutex:
            if self._closed:
                return
            self._closed = True
        self._wake.set()
        self._timer.join()
        final = _Pending(None, {}, force=True)
        self._submit([final], closing=True)
        if final.error is not None:
            _log.error("no final checkpoint for `%s`: %s", self.origin, final.error)

    # -- the idle timer --------------------------------------------------------------------------

    def _idle_timeout(self) -> float | None:
        due = []
        if self._size > self._cp_size:
            due.append(self._cp_time + CHECKPOINT_INTERVAL)
        if self._in_use and self.anchor_interval is not None:
            due.append(self._anchor_time + self.anchor_interval)
        if not due:
            return None
        return max((min(due) - self._now()).total_seconds(), 0.001)

    def _run_timer(self) -> None:
        """Join the writers when a checkpoint or an anchor falls due while no caller appends.

        A busy log checkpoints and anchors inside its batches; this thread only covers the idle
        tail. It sleeps without a deadline while nothing is due; a leader that makes something
        due wakes it (``_wake``), so an idle log costs no thread switches at all.
        """
        while not self._closed:
            # INVARIANT: ``_timer_due`` is cleared before the head is read, so a leader that
            # changes the head after the read sees it cleared and wakes this thread.
            self._timer_due = False
            try:
                timeout = self._idle_timeout()
            except Exception:  # noqa: BLE001 - the clock failed: retry soon, never stop checkpointing
                _log.exception("audit timer of `%s` could not read the clock", self.origin)
                timeout = _TIMER_RETRY_S
            self._timer_due = timeout is not None
            if self._wake.wait(timeout):
                self._wake.clear()
                continue
            try:
                self._submit([_Pending(None, {})])
            except AuditWriteError:
                return  # closed meanwhile: close() writes the final checkpoint

    # -- the leader's work -----------------------------------------------------------------------

    def _commit(self, batch: list[_Pending]) -> None:
        """Assign, store and checkpoint ``batch`` in one transaction; set each result or error."""
        # The compact range is rolled back from its bytes: one join per batch, where a copy would
        # re-check every hash; it is rebuilt from them only when a batch fails.
        old = (self._size, self._head, self._cr.to_bytes())
        now = self._now()
        force = False
        in_use = self._in_use
        for p in batch:
            if p.kind is None:
                force = force or p.force
            else:
                in_use = True
        anchor = self._anchor_entry(now) if in_use else None
        entries_batch = [*batch, anchor] if anchor is not None else batch
        try:
            entries, payloads = self._assign(entries_batch, now)
            checkpoint = self._checkpoint_row(now, force=force)
            if entries or checkpoint is not None:
                self._storage.commit_batch(
                    self.origin,
                    old_size=old[0],
                    epoch=self._epoch,
                    head=(self._size, self._head, self._cr.to_bytes(), self._epoch),
                    entries=entries,
                    payloads=payloads,
                    checkpoint=checkpoint,
                )
        except Exception as exc:  # noqa: BLE001 - the leader's fail-closed boundary: every waiter must hear
            self._size, self._head = old[0], old[1]
            self._cr = CompactRange.from_bytes(old[0], old[2])
            if all(p.kind is None for p in batch):
                self._cp_time = now  # an idle checkpoint failed: retry in a second, do not spin
            error = AuditWriteError(
                f"audit entries could not be committed to `{self.origin}`: {exc}",
                hint="the decision is SILENCE; check the audit database and disk",
            )
            for p in batch:
                p.result = None
                p.error = error
            return
        if checkpoint is not None:
            self._cp_size, self._cp_time = checkpoint[0], now
        self._in_use = in_use and anchor is None

    # -- cross-shard anchors ---------------------------------------------------------------------

    def _anchor_entry(self, now: datetime) -> _Pending | None:
        """An ``anchor`` entry naming every peer shard's latest checkpoint, when one is due.

        Runs on the appender thread about once a minute; a failure to read the peers is logged and
        retried at the next interval rather than holding up the batch.
        """
        interval = self.anchor_interval
        if interval is None or now - self._anchor_time < interval:
            return None
        self._anchor_time = now
        try:
            seen = self._peer_checkpoints()
        except StoreError as exc:
            _log.warning("cannot read peer shards to anchor from `%s`: %s", self.origin, exc)
            return None
        if not seen:
            return None
        anchors = [
            {"log": origin, "root": "sha256:" + root.hex(), "size": size}
            for origin, (size, root) in sorted(seen.items())
        ]
        return _Pending("anchor", {"id": new_ulid(), "anchors": anchors})

    def _peer_checkpoints(self) -> dict[str, tuple[int, bytes]]:
        """Latest signature-checked checkpoint of every other shard of this deployment."""
        prefix = self._key.name + "/"
        deployment = [self._key.verifier()]
        seen: dict[str, tuple[int, bytes]] = {}
        for origin in self._storage.origins():
            if origin == self.origin or not origin.startswith(prefix):
                continue
            row = self._storage.latest_checkpoint(origin)
            if row is None:
                continue
            try:
                cp = verify_checkpoint(CheckpointRow._make(row).note, deployment, origin=origin)
            except CheckpointError as exc:
                _log.error(
                    "not anchoring shard `%s`: its latest checkpoint is invalid: %s", origin, exc
                )
                continue
            size, root = cp.checkpoint.size, cp.checkpoint.root
            self._check_peer(origin, size, root)
            seen[origin] = (size, root)
        return seen

    def _check_peer(self, origin: str, size: int, root: bytes) -> None:
        """Check that a peer's new checkpoint extends the one last found consistent.

        The peer's leaves from the last consistent size on are appended to the compact range kept
        for it; the result must be the signed root. That is an RFC 6962 consistency check by
        recomputation: a peer whose earlier entries were rewritten (even with a re-signed
        checkpoint), or that went back to a smaller size, fails it. The first check after start
        reads the peer's leaf hashes once (32 bytes per entry); later ones read only new leaves.
        A failure is logged as critical and the checkpoint is still anchored, so the verifier
        reports it with this shard's evidence.
        """
        known = self._peers.get(origin) or CompactRange()
        extended = known.copy()
        if size >= known.size:
            for lh in self._storage.leaf_hashes(origin, known.size, size):
                extended.append(lh)
        if extended.size == size and extended.root() == root:
            self._peers[origin] = extended
            return
        _log.critical(
            "shard `%s`: its checkpoint at size %d is not consistent with its entries as "
            "seen before (size %d): the shard was rewritten, forked or rolled back; anchoring "
            "it from `%s` for the verifier to report",
            origin,
            size,
            known.size,
            self.origin,
        )

    def _assign(
        self, batch: list[_Pending], now: datetime
    ) -> tuple[list[tuple[int, bytes, bytes, str | None]], list[tuple[int, bytes, bytes, str]]]:
        time_text = format_time(now)
        today = now.date()
        untils: dict[int, str] = {}  # retention days -> until, once per batch
        entries: list[tuple[int, bytes, bytes, str | None]] = []
        payloads: list[tuple[int, bytes, bytes, str]] = []
        origin = self.origin
        append_leaf = self._cr.append
        index, prev = self._size, self._head
        for p in batch:
            if p.kind is None:
                continue
            until = None
            retention = None
            if p.retention is not None:
                days = p.retention[1]
                until = untils.get(days)
                if until is None:
                    until = untils[days] = (today + timedelta(days=days)).isoformat()
                retention = (p.retention[0], until)
            header = build_header(
                log=origin,
                index=index,
                prev=prev,
                time=time_text,
                kind=p.kind,
                fields=p.fields,
                retention=retention,
                payload=None if p.body is None else (p.commit, len(p.body)),
            )
            # INVARIANT: the parts the log adds are ASCII strings and small integers, so the header
            # is fast-path safe exactly when the caller's fields are.
            raw = (
                orjson.dumps(header, option=orjson.OPT_SORT_KEYS)
                if p.fast
                else header_bytes(header)
            )
            if len(raw) > MAX_HEADER_BYTES:
                raise EntryError(
                    f"entry {index} header is {len(raw)} bytes; the limit is {MAX_HEADER_BYTES}"
                )
            prev = leaf_hash(raw)
            append_leaf(prev)
            entries.append((index, prev, raw, until))
            if p.body is not None:
                payloads.append((index, p.salt, p.body, "none"))
            p.result = AppendedEntry(index, "sha256:" + prev.hex(), origin, time_text)
            index += 1
        # INVARIANT: on an error above ``_commit`` restores size, head and compact range.
        self._size, self._head = index, prev
        return entries, payloads

    def _checkpoint_row(
        self, now: datetime, *, force: bool
    ) -> tuple[int, bytes, bytes, str] | None:
        grown = self._size - self._cp_size
        if grown <= 0:
            return None
        if not (force or grown >= CHECKPOINT_ENTRIES or now - self._cp_time >= CHECKPOINT_INTERVAL):
            return None
        root = self._cr.root()
        text = Checkpoint(self.origin, self._size, root).to_text()
        note = add_signatures(text, [self._key.sign_note(text, self.origin)])
        return (self._size, root, note, format_time(now))
