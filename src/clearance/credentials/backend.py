"""The interface every secret backend implements."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from clearance.credentials.scopes import CredentialSpec
from clearance.credentials.secret import Secret
from clearance.model.session import Environment


@dataclass(frozen=True, slots=True)
class Issued:
    """What a backend handed out: the value, its own lease reference (if any) and its expiry."""

    secret: Secret
    backend_ref: str | None
    ttl: timedelta


class Backend(Protocol):
    """A source of secrets for exactly one environment."""

    name: str
    environment: Environment

    def issue(self, spec: CredentialSpec, now: datetime) -> Issued:
        """Fetch or mint the credential of ``spec``; raise ``CredentialError`` when unavailable."""
        ...

    def revoke(self, backend_ref: str) -> None:
        """End a lease this backend issued; raise ``CredentialError`` when it cannot."""
        ...
