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

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any, Protocol

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

    # decision time --------------------------------------------------------------------------
    def for_session(self, state: SessionState, compiled: CompiledPolicy) -> PolicyProvenance:
        """The session's provenance in policy labels; cached, reloaded when the taint grew."""
        session_id = state.session.session_id
        entry = self._cache.get(session_id)
        if entry is not None and entry.seen_taint.issuperset(state.taint):
            return entry.view
        with self._lock:
            entry = self._load(state, compiled)
            return entry.view

    # results --------------------------------------------------------------------------------
    def on_decision(self, request: Request, decision: Decision, state: SessionState) -> None:
        """Decisions change no provenance: only what a tool returned does."""

    def on_result(self, result: ActionResult, decision: dict[str, Any]) -> None:
        """Record ``result.output`` under its tool's source, judged by the policy that permitted it."""
        if result.output is None:
            return
        record = self.store.get_decision(result.decision_id)
        if record is None:
            raise LookupError(f"no decision `{result.decision_id}` to attribute this result to")
        tool = str(record.request["tool"])
        compiled = self._policies(str(decision["policy"]))
        known = compiled.tools.get(tool)
        untrusted = known is None or known.spec.untrusted_source
        source = f"{UNTRUSTED_PREFIX}{tool}" if untrusted else f"{TRUSTED_TOOL_PREFIX}{tool}"
        self.record(str(record.request["session_id"]), source, result.output, compiled=compiled)

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
            LookupError: the session is unknown.
        """
        validate_source(source)
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
        entry = _Entry(
            provenance=provenance,
            view=PolicyView(provenance),
            seen_taint=frozenset(state.taint) | provenance.taint,
        )
        self._cache[session.session_id] = entry
        self._cache.move_to_end(session.session_id)
        while len(self._cache) > self._limit:
            self._cache.popitem(last=False)
        return entry
