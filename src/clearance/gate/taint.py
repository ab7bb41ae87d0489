"""Session taint and value provenance, fed by the tool results agents report.

A web page an agent fetched may carry instructions, and an invoice it read may name an account the
principal never mentioned. Policy can only act on that if the gate remembers, per session, which
sources each value was seen in. :class:`SessionTaint` is that memory:

* as an :class:`~clearance.gate.hooks.Observer`, it records every reported ``ActionResult.output``
  into the session's :class:`~clearance.scan.provenance.Provenance` under ``untrusted:<tool>``
  when the policy marks the tool ``untrusted_source`` (or does not know it), else
  ``trusted-tool:<tool>``; untrusted output taints the session and is run through the injection
  scanner, a hit adding the taint source ``untrusted:injection:<tool>``;
* as a :class:`ProvenanceSource`, it hands ``Gate.decide`` the provenance of a session in the
  labels policy conditions read (``instruction``, ``data``, ``trusted:<tool>``,
  ``untrusted:<name>``).

The store is the source of truth (namespace ``provenance``, one document per session, seeded with
the session's instruction and the policy's data lists); an in-memory cache keeps the decision-time
lookup to a dict access. A cached entry is reloaded when the store's session taint names a source
the entry has not seen, so a result recorded by another replica is never missed for long enough to
turn an untrusted value into an unknown one.

Recording fails closed. When an output cannot be recorded (store or scanner failure), the session's
taint is *unknown*: the output is listed as lost (in memory, and in the store namespace
``taint-unrecorded`` where the store still takes writes, with the taint source
``untrusted:unrecorded``), ``on_result`` raises :class:`~clearance.errors.TaintUnrecordedError` (the
sidecar answers 503), and ``for_session`` raises it too, so every decision in that session is
SILENCE until the same output is reported again and recorded. Treating the session as merely
tainted would not be enough: the lost output's values are missing from provenance, and a policy
may treat an unknown value more kindly than one seen only in untrusted content.

Replay needs the same answers the decision got: :class:`RecordingProvenance` records every question
policy asked and its answer, the gate stores them with the decision's facts, and
:func:`replay_inputs` turns them back into a provenance for ``Gate.replay``.

Wiring::

    taint = SessionTaint(store, policies=lambda digest: gate.bundle_by_digest(digest).compiled,
                         clock=gate.clock)
    gate.provenance = taint
    gate.observers.append(taint)
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any, Protocol

from clearance.errors import TaintUnrecordedError
from clearance.gate.clock import Clock, iso
from clearance.model.decision import Decision
from clearance.model.request import Request
from clearance.model.result import ActionResult
from clearance.model.session import SessionFacts
from clearance.policy.cases import MappingProvenance
from clearance.policy.compile import CompiledPolicy
from clearance.policy.hooks import DATA, TRUSTED
from clearance.policy.hooks import Provenance as PolicyProvenance
from clearance.scan.finding import flagged
from clearance.scan.injection import InjectionScanner
from clearance.scan.provenance import (
    INSTRUCTION,
    POLICY_DATA,
    TRUSTED_TOOL_PREFIX,
    UNTRUSTED_PREFIX,
    Provenance,
    is_trusted_source,
    validate_source,
)
from clearance.store.protocol import SessionState, Store

log = logging.getLogger("clearance.gate.taint")

NAMESPACE = "provenance"
"""The store's key-value namespace holding one provenance document per session id."""

UNRECORDED_NAMESPACE = "taint-unrecorded"
"""The store's key-value namespace listing, per session id, the outputs that could not be recorded."""

UNRECORDED = UNTRUSTED_PREFIX + "unrecorded"
"""Taint source added when an output could not be recorded: whatever it was, the session may have
read untrusted content, and the growing taint makes every replica reload the session's state."""

INJECTION_PREFIX = UNTRUSTED_PREFIX + "injection:"
"""Taint source added when the injection scanner flags untrusted content ``untrusted:<name>``:
``untrusted:injection:<name>`` (``untrusted:injection:fetch_url`` for a fetched page)."""

PROVENANCE_FACT = "provenance"
"""Key of ``SessionFacts.extra`` holding the provenance questions a decision asked, for replay."""

SCAN_FACT = "scan"
"""Key of ``SessionFacts.extra`` holding the ``scan`` variable a decision computed, for replay."""

DEFAULT_CACHE_SESSIONS = 4096

MEMO_LIMIT = 1024
"""Answers memoised per session view before the memo starts over."""


class ProvenanceSource(Protocol):
    """Where the gate gets a session's provenance at decision time."""

    def for_session(self, state: SessionState, compiled: CompiledPolicy) -> PolicyProvenance | None:
        """The provenance of ``state``'s session, or None when nothing is known about it."""
        ...


@lru_cache(maxsize=4096)
def policy_label(source: str) -> str:
    """The label policy reads for a recorded source (``policy-data`` -> ``data``, ...)."""
    if source == POLICY_DATA:
        return DATA
    if source.startswith(TRUSTED_TOOL_PREFIX):
        return f"{TRUSTED}:{source[len(TRUSTED_TOOL_PREFIX) :]}"
    return source


class PolicyView:
    """A :class:`Provenance` seen through policy's labels (the ``Provenance`` hook of ``evaluate``).

    A list is answered with the union of its elements' sources; ask per element
    (``args.to.exists(x, only_untrusted(x))``) when every element matters. Answers for scalars are
    memoised (normalising a value costs a few microseconds, and agents repeat the same payees and
    recipients); a view is replaced whenever its provenance records something, so the memo never
    outlives the state it describes.
    """

    __slots__ = ("_memo", "_provenance")

    def __init__(self, provenance: Provenance) -> None:
        self._provenance = provenance
        self._memo: dict[str | int | float | Decimal, frozenset[str]] = {}

    def sources(self, value: object) -> frozenset[str]:
        """Policy labels of every place ``value`` was seen; empty for maps and unseen values."""
        if isinstance(value, list | tuple):
            found: set[str] = set()
            for item in value:
                found.update(self.sources(item))
            return frozenset(found)
        if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
            return frozenset()
        known = self._memo.get(value)
        if known is None:
            known = frozenset(policy_label(s) for s in self._provenance.sources_of(value))
            if len(self._memo) >= MEMO_LIMIT:
                self._memo.clear()
            self._memo[value] = known
        return known


class RecordingProvenance:
    """Answers from ``inner`` and remembers each question, so replay gets the same answers."""

    __slots__ = ("_inner", "asked")

    def __init__(self, inner: PolicyProvenance) -> None:
        self._inner = inner
        self.asked: dict[str, list[str]] = {}

    def sources(self, value: object) -> frozenset[str]:
        """The inner answer, recorded under ``str(value)`` (how replay looks it up)."""
        found = self._inner.sources(value)
        self.asked[str(value)] = sorted(found)
        return found


def decision_extra(asked: RecordingProvenance, scan: Mapping[str, Any] | None) -> dict[str, Any]:
    """What replay needs beside the session facts: the provenance answers and the scan variable.

    Merged into the archived facts' ``extra`` (see :func:`replay_inputs`); empty when policy asked
    neither, so most decision records carry nothing more.
    """
    extra: dict[str, Any] = {}
    if asked.asked:
        extra[PROVENANCE_FACT] = dict(sorted(asked.asked.items()))
    if scan is not None:
        extra[SCAN_FACT] = dict(scan)
    return extra


def replay_inputs(
    facts: SessionFacts,
) -> tuple[SessionFacts, PolicyProvenance, Mapping[str, Any] | None]:
    """Split archived facts into the facts, provenance and scan the original decision evaluated."""
    extra = dict(facts.extra)
    table = extra.pop(PROVENANCE_FACT, None) or {}
    scan = extra.pop(SCAN_FACT, None)
    clean = facts.model_copy(update={"extra": extra}) if extra != facts.extra else facts
    return clean, MappingProvenance(table), scan


def output_texts(content: Any) -> Iterator[str]:
    """Every string in JSON-like ``content``, object keys included (injections hide in keys too)."""
    if isinstance(content, str):
        yield content
    elif isinstance(content, Mapping):
        for key, item in content.items():
            yield str(key)
            yield from output_texts(item)
    elif isinstance(content, list | tuple):
        for item in content:
            yield from output_texts(item)


@dataclass(slots=True)
class _Entry:
    """A cached session provenance and the store taint it has been reconciled with."""

    provenance: Provenance
    view: PolicyView
    seen_taint: frozenset[str]
    lost: frozenset[str] = frozenset()
    """Outputs the store lists as not recorded (see ``UNRECORDED_NAMESPACE``)."""


class SessionTaint:
    """Records reported tool output as provenance and taint; serves provenance to ``decide``.

    Args:
        store: the gate's store (the source of truth for taint and provenance).
        policies: the compiled policy by bundle digest, to judge a result by the policy that
            permitted its call (``Gate.bundle_by_digest``).
        clock: the gate's clock, for the time taint was first recorded.
        scanner: the injection scanner run on untrusted output.
        cache_sessions: how many sessions' provenance stay in memory.
    """

    def __init__(
        self,
        store: Store,
        *,
        policies: Callable[[str], CompiledPolicy],
        clock: Clock,
        scanner: InjectionScanner | None = None,
        cache_sessions: int = DEFAULT_CACHE_SESSIONS,
    ) -> None:
        if cache_sessions < 1:
            raise ValueError(f"cache_sessions must be at least 1, got {cache_sessions}")
        self.store = store
        self._policies = policies
        self._clock = clock
        self._scanner = scanner or InjectionScanner()
        self._limit = cache_sessions
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        # INVARIANT: a session id is a key of _lost exactly while this process knows of an output
        # of that session it could not record; _unattributed holds results whose session could
        # not even be looked up. Either makes for_session raise.
        self._lost: dict[str, set[str]] = {}
        self._unattributed: set[str] = set()

    # decision time --------------------------------------------------------------------------
    def for_session(self, state: SessionState, compiled: CompiledPolicy) -> PolicyProvenance:
        """The session's provenance in policy labels; cached, reloaded when the taint grew."""
        session_id = state.session.session_id
        if self._unattributed or self._lost:
            self._check_recorded(session_id)
        entry = self._cache.get(session_id)
        if entry is not None and not entry.lost and entry.seen_taint.issuperset(state.taint):
            return entry.view
        with self._lock:
            entry = self._load(state, compiled)
        if entry.lost:
            raise _unknown(session_id, entry.lost)
        return entry.view

    def _check_recorded(self, session_id: str) -> None:
        """Raise when this process knows of an output of the session it could not record."""
        with self._lock:
            for decision_id in sorted(self._unattributed):
                # The store failed before the result's session was known; look it up now (a
                # store still failing raises here, and the decision is SILENCE all the same).
                record = self.store.get_decision(decision_id)
                if record is not None:
                    self._mark_lost(str(record.request["session_id"]), _decision_key(decision_id))
                self._unattributed.discard(decision_id)
            lost = self._lost.get(session_id)
        if lost:
            raise _unknown(session_id, lost)

    # results --------------------------------------------------------------------------------
    def on_decision(self, request: Request, decision: Decision, state: SessionState | None) -> None:
        """Decisions change no provenance: only what a tool returned does."""

    def on_result(self, result: ActionResult, decision: dict[str, Any]) -> None:
        """Record ``result.output`` under its tool's source, judged by the policy that permitted it."""
        if result.output is None:
            return
        try:
            record = self.store.get_decision(result.decision_id)
            if record is None:
                raise LookupError(f"no decision `{result.decision_id}` to attribute this result to")
            session_id = str(record.request["session_id"])
        except Exception as exc:
            with self._lock:
                self._unattributed.add(result.decision_id)
            raise TaintUnrecordedError(
                f"the output of decision `{result.decision_id}` was not recorded: its session "
                f"could not be looked up ({exc})",
                hint="report the result again once the store answers",
            ) from exc
        key = _decision_key(result.decision_id)
        try:
            tool = str(record.request["tool"])
            compiled = self._policies(str(decision["policy"]))
            known = compiled.tools.get(tool)
            untrusted = known is None or known.spec.untrusted_source
            source = f"{UNTRUSTED_PREFIX}{tool}" if untrusted else f"{TRUSTED_TOOL_PREFIX}{tool}"
            self._record(session_id, source, result.output, compiled, key)
        except Exception as exc:
            raise self._lose(session_id, key, exc) from exc

    def record(
        self, session_id: str, source: str, content: Any, *, compiled: CompiledPolicy
    ) -> None:
        """Record ``content`` as seen in ``source`` by the session; untrusted sources taint it.

        Besides tool results, this is how the orchestrator records what an agent received from
        another agent (``Delivery.envelope.source``) or read from shared context
        (``ReadEntry.source``). Untrusted content is run through the injection scanner; a hit adds
        the taint source ``untrusted:injection:<name>``.

        Raises:
            ValueError: ``source`` is not one of the provenance source shapes.
            TaintUnrecordedError: the content could not be recorded (the session is unknown, the
                store or the scanner failed); the session's decisions are SILENCE until the same
                content is recorded.
        """
        validate_source(source)
        key = _content_key(source, content)
        try:
            self._record(session_id, source, content, compiled, key)
        except Exception as exc:
            raise self._lose(session_id, key, exc) from exc

    def _record(
        self, session_id: str, source: str, content: Any, compiled: CompiledPolicy, key: str
    ) -> None:
        """Record ``content``; then ``key`` no longer names a lost output of the session."""
        taint: list[str] = []
        if not is_trusted_source(source):
            taint.append(source)
            text = "\n".join(output_texts(content))
            if flagged(self._scanner.scan(text), self._scanner.threshold):
                taint.append(INJECTION_PREFIX + source[len(UNTRUSTED_PREFIX) :])
        at = iso(self._clock.now())
        with self._lock:
            state = self.store.session_state(session_id)
            if state is None:
                raise LookupError(f"no session `{session_id}` to record `{source}` content into")
            if taint:
                # Taint first: if the provenance write fails, the session is still marked.
                self.store.add_taint(session_id, taint, at)
            entry = self._load(state, compiled)
            entry.provenance.record(source, content)
            self.store.kv_put(NAMESPACE, session_id, entry.provenance.to_dict(), at)
            entry.view = PolicyView(entry.provenance)
            entry.seen_taint = entry.seen_taint | frozenset(taint)
            lost = self._lost.get(session_id, set()) | entry.lost
            if key in lost:
                lost.discard(key)
                self._save_lost(session_id, lost, at)
                entry.lost = frozenset(lost)
                if lost:
                    self._lost[session_id] = lost
                else:
                    self._lost.pop(session_id, None)

    def _lose(self, session_id: str, key: str, cause: Exception) -> TaintUnrecordedError:
        """Mark ``key`` lost for the session (fail closed) and build the error for the reporter."""
        log.error("could not record %s of session %s: %s", key, session_id, cause, exc_info=cause)
        with self._lock:
            self._mark_lost(session_id, key)
        return TaintUnrecordedError(
            f"output `{key}` of session `{session_id}` was not recorded ({cause}); the session's "
            "decisions are SILENCE until it is",
            hint="report the same result again once the store answers, or open a new session",
        )

    def _mark_lost(self, session_id: str, key: str) -> None:
        """Remember ``key`` as lost, in memory first, then (best effort) in the store."""
        lost = self._lost.setdefault(session_id, set())
        lost.add(key)
        self._cache.pop(session_id, None)
        at = iso(self._clock.now())
        try:
            stored = self.store.kv_get(UNRECORDED_NAMESPACE, session_id) or {}
            lost.update(stored.get("lost", ()))
        except Exception:  # noqa: BLE001 - the memory marker stands; the store may be the failure
            log.warning("could not read the unrecorded outputs of session %s", session_id)
        # The list first: a replica that sees the taint grow reloads the session and finds it.
        try:
            self._save_lost(session_id, lost, at)
        except Exception:  # noqa: BLE001 - as above: this replica stays closed regardless
            log.warning("could not persist the unrecorded outputs of session %s", session_id)
        try:
            self.store.add_taint(session_id, [UNRECORDED], at)
        except Exception:  # noqa: BLE001 - as above
            log.warning("could not add the taint %s to session %s", UNRECORDED, session_id)

    def _save_lost(self, session_id: str, lost: set[str], at: str) -> None:
        if lost:
            self.store.kv_put(UNRECORDED_NAMESPACE, session_id, {"lost": sorted(lost)}, at)
        else:
            self.store.kv_delete(UNRECORDED_NAMESPACE, session_id)

    # internals ------------------------------------------------------------------------------
    def _load(self, state: SessionState, compiled: CompiledPolicy) -> _Entry:
        """Read the session's provenance from the store (seeding a new one) and cache it."""
        session = state.session
        stored = self.store.kv_get(NAMESPACE, session.session_id)
        if stored is not None:
            provenance = Provenance.from_dict(stored)
        else:
            provenance = Provenance()
            if session.instruction:
                provenance.record(INSTRUCTION, session.instruction)
            for values in compiled.data.values():
                provenance.record(POLICY_DATA, list(values))
        marker = self.store.kv_get(UNRECORDED_NAMESPACE, session.session_id) or {}
        entry = _Entry(
            provenance=provenance,
            view=PolicyView(provenance),
            seen_taint=frozenset(state.taint) | provenance.taint,
            lost=frozenset(str(key) for key in marker.get("lost", ())),
        )
        self._cache[session.session_id] = entry
        self._cache.move_to_end(session.session_id)
        while len(self._cache) > self._limit:
            self._cache.popitem(last=False)
        return entry


def _decision_key(decision_id: str) -> str:
    return f"decision:{decision_id}"


def _content_key(source: str, content: Any) -> str:
    """Names content recorded outside a result (a message, a shared-context read) by its digest."""
    digest = hashlib.sha256("\x00".join((source, *output_texts(content))).encode()).hexdigest()
    return f"content:{digest[:32]}"


def _unknown(session_id: str, lost: Iterable[str]) -> TaintUnrecordedError:
    return TaintUnrecordedError(
        f"the taint of session `{session_id}` is unknown: {', '.join(sorted(lost))} "
        "could not be recorded",
        hint="report those results again; until they are recorded every decision here is SILENCE",
    )
