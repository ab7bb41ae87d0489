"""Credential isolation: agents get short-lived, scoped secrets only against a PERMIT or a token.

See ``clearance.credentials.broker`` for the rules and ``docs/approvals.md`` for wiring.
"""

from clearance.credentials.backend import Backend, Issued
from clearance.credentials.broker import Credential, CredentialBroker
from clearance.credentials.local import LocalBackend
from clearance.credentials.scopes import CredentialSpec, credential_specs
from clearance.credentials.secret import Secret

__all__ = [
    "Backend",
    "Credential",
    "CredentialBroker",
    "CredentialSpec",
    "Issued",
    "LocalBackend",
    "Secret",
    "credential_specs",
]
