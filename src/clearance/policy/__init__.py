"""The policy language: YAML in, a compiled policy and its bundle out, and pure evaluation.

::

    from pathlib import Path
    from clearance.policy import evaluate, load_policy

    bundle = load_policy(Path("examples/financeapp/policy.yaml"))
    verdict = evaluate(bundle.compiled, request, session_facts)

``docs/policy.md`` is the language reference.
"""

from clearance.policy.bundle import Bundle, BundleSignatureError
from clearance.policy.compile import CompiledPolicy, CompiledRule, CompiledTool
from clearance.policy.evaluate import evaluate
from clearance.policy.hooks import Provenance
from clearance.policy.load import load_policy

__all__ = [
    "Bundle",
    "BundleSignatureError",
    "CompiledPolicy",
    "CompiledRule",
    "CompiledTool",
    "Provenance",
    "evaluate",
    "load_policy",
]
