"""Multi-agent trust boundaries: zones and grants, delegation, messages, shared context.

Nothing an agent says can raise its authority: zones and grants come from the
:class:`~clearance.agents.registry.AgentDirectory` a trusted party fills, delegation intersects
grants, messages and shared-context entries are untrusted text for whoever receives them.
"""

from clearance.agents.delegation import DelegationChain, effective_grants, grants_allow
from clearance.agents.messages import Delivery, Envelope, MessageRouter, message_source
from clearance.agents.registry import (
    ALL_TOOLS,
    PRIVILEGED,
    READ_ONLY,
    UNTRUSTED,
    WRITE_LIMITED,
    AgentDirectory,
    AgentRecord,
    TrustZone,
)
from clearance.agents.shared_context import (
    ContextStore,
    Entry,
    InMemoryContextStore,
    ReadEntry,
    Reading,
    SharedContext,
    context_source,
)

__all__ = [
    "ALL_TOOLS",
    "PRIVILEGED",
    "READ_ONLY",
    "UNTRUSTED",
    "WRITE_LIMITED",
    "AgentDirectory",
    "AgentRecord",
    "ContextStore",
    "DelegationChain",
    "Delivery",
    "Entry",
    "Envelope",
    "InMemoryContextStore",
    "MessageRouter",
    "ReadEntry",
    "Reading",
    "SharedContext",
    "TrustZone",
    "context_source",
    "effective_grants",
    "grants_allow",
    "message_source",
]
