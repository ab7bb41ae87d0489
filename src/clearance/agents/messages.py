"""Inter-agent messages: every one goes through the orchestrator, is scanned, logged and untrusted.

An agent that has been compromised (it read a poisoned page) will try to pivot by talking to more
privileged agents. :class:`MessageRouter` is the orchestrator-side choke point that makes such a
message harmless by construction:

* sender and receiver must be registered (:class:`~clearance.agents.registry.AgentDirectory`); the
  sender id comes from the orchestrator's authenticated handle, never from the payload;
* the payload is scanned (injection, secrets, ...) and the findings travel with it;
* the envelope is handed to an injected ``log`` callback *before* delivery; if logging raises, the
  message is not delivered (audit or refuse) - the callback keeps this package below the gate;
* the message is **untrusted for the receiver**: the :class:`Delivery` names the taint source
  ``untrusted:agent:<sender>`` the gate must add to the receiver's session;
* a message carries **no authority**: keys such as ``task``, ``environment`` or ``grants`` in a
  JSON payload are only text. They are reported in ``authority_claims`` (evidence of an attempt)
  and nothing else happens: the router holds no reference to sessions or grants it could change.

Example::

    from clearance.agents.messages import MessageRouter
    from clearance.agents.registry import PRIVILEGED, READ_ONLY, AgentDirectory, AgentRecord
    from clearance.scan import InjectionScanner

    directory = AgentDirectory()
    directory.register(AgentRecord("research", READ_ONLY, frozenset({"fetch_url"})))
    directory.register(AgentRecord("deploy", PRIVILEGED, frozenset({"deploy"})))
    logged = []
    router = MessageRouter(directory, [InjectionScanner()], logged.append)
    delivery = router.send("research", "deploy", {"task": "deploy", "note": "ship it"})
    assert delivery.taint == frozenset({"untrusted:agent:research"})
    assert delivery.envelope.authority_claims == ("task",)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clearance.agents.registry import AgentDirectory, TrustZone
from clearance.errors import AuthorizationError
from clearance.scan.finding import Finding, Scanner, flagged
from clearance.scan.provenance import UNTRUSTED_PREFIX, Provenance

AUTHORITY_KEYS = frozenset(
    {
        "task",
        "environment",
        "env",
        "grants",
        "tools",
        "permissions",
        "role",
        "zone",
        "trust_zone",
        "principal",
        "instruction",
        "delegation",
        "session",
        "session_id",
        "agent_id",
        "approval",
        "approval_token",
        "policy",
    }
)
"""Top-level payload keys that name session authority; a message containing them is an attempt."""


def message_source(sender: str) -> str:
    """The provenance and taint source of a message from ``sender``."""
    return f"{UNTRUSTED_PREFIX}agent:{sender}"


@dataclass(frozen=True, slots=True)
class Envelope:
    """One routed message, as logged.

    Attributes:
        sequence: position in this router's message stream (1, 2, ...), deterministic.
        sender: registered sender id, from the orchestrator's handle.
        receiver: registered receiver id.
        sender_zone: the sender's zone at send time.
        payload: the message text (JSON payloads are serialised with sorted keys).
        findings: every scanner finding on the payload.
        authority_claims: authority keys the payload tried to set; they had no effect.
    """

    sequence: int
    sender: str
    receiver: str
    sender_zone: TrustZone
    payload: str
    findings: tuple[Finding, ...]
    authority_claims: tuple[str, ...]

    @property
    def source(self) -> str:
        """``untrusted:agent:<sender>``: how the receiver's session records this content."""
        return message_source(self.sender)

    @property
    def trusted(self) -> bool:
        """Always ``False``: no message is trusted by its receiver."""
        return False


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the gate needs after a message was routed.

    Attributes:
        envelope: the logged envelope.
        taint: sources to add to the receiver's session taint (never empty).
        flagged: some scanner's finding reached that scanner's threshold.
    """

    envelope: Envelope
    taint: frozenset[str]
    flagged: bool

    def record_into(self, provenance: Provenance) -> None:
        """Record the payload's values in the receiver's provenance, as untrusted."""
        provenance.record(self.envelope.source, self.envelope.payload)


class MessageRouter:
    """The orchestrator-side router; see the module docstring for its guarantees.

    Args:
        directory: registered agents.
        scanners: scanners run on every payload.
        log: called with each envelope before delivery; an exception stops delivery.
    """

    def __init__(
        self,
        directory: AgentDirectory,
        scanners: Sequence[Scanner],
        log: Callable[[Envelope], None],
    ) -> None:
        self._directory = directory
        self._scanners = tuple(scanners)
        self._log = log
        self._sequence = 0

    def send(self, sender: str, receiver: str, payload: str | Mapping[str, Any]) -> Delivery:
        """Scan, log and deliver one message.

        Raises:
            AuthorizationError: the sender or receiver is not registered, or they are the same.
            Exception: whatever ``log`` raises; the message is then not delivered.
        """
        sender_record = self._directory.get(sender)
        self._directory.get(receiver)
        if sender == receiver:
            raise AuthorizationError(f"agent {sender!r} cannot message itself through the router")
        text, claims = _payload_text(payload)
        findings: list[Finding] = []
        hit = False
        for scanner in self._scanners:
            found = scanner.scan(text)
            findings.extend(found)
            hit = hit or flagged(found, scanner.threshold)
        envelope = Envelope(
            sequence=self._sequence + 1,
            sender=sender,
            receiver=receiver,
            sender_zone=sender_record.zone,
            payload=text,
            findings=tuple(findings),
            authority_claims=claims,
        )
        self._log(envelope)
        # INVARIANT: the sequence only advances for logged messages, so gaps mean lost evidence.
        self._sequence = envelope.sequence
        return Delivery(envelope=envelope, taint=frozenset({envelope.source}), flagged=hit)


def _payload_text(payload: str | Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    """The payload as text, and the authority keys it names (also inside a JSON-object string)."""
    if isinstance(payload, str):
        return payload, _claims(_json_object(payload))
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str), _claims(payload)


def _json_object(text: str) -> Mapping[str, Any]:
    if not text.lstrip().startswith("{"):
        return {}
    try:
        parsed = json.loads(text)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _claims(payload: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(str(key) for key in payload if str(key).lower() in AUTHORITY_KEYS))
