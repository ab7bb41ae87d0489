"""HashiCorp Vault (or OpenBao) backend through ``hvac``: KV v2 reads and dynamic-secret leases.

One ``VaultBackend`` serves one environment and should use a Vault token whose policy reaches
only that environment's paths. Static secrets are read from KV v2 at
``<kv_mount>/<kv_prefix>/<secret>``; a secret named in ``dynamic`` is minted at its path (for
example ``database/creds/readonly`` or ``pki/issue/agent``) and comes with a Vault lease that
``revoke`` ends, which the broker does for every lease of an agent that is stopped.

Example::

    client = hvac.Client(url="https://vault.internal:8200", token=gate_token)
    production = VaultBackend(Environment.PRODUCTION, client, kv_prefix="clearance/production",
                              dynamic={"db": DynamicSecret("database/creds/readonly")})
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from clearance.credentials.backend import Issued
from clearance.credentials.scopes import CredentialSpec
from clearance.credentials.secret import Secret
from clearance.errors import CredentialError
from clearance.model.session import Environment


@dataclass(frozen=True, slots=True)
class DynamicSecret:
    """Where a dynamic secret is minted: a read (``GET``) or a write with parameters (``POST``)."""

    path: str
    method: str = "GET"
    params: Mapping[str, Any] = field(default_factory=dict)
    ttl_param: str | None = None


def _value(data: Mapping[str, Any]) -> str:
    """A single ``value`` field as is, anything else as canonical JSON."""
    if set(data) == {"value"} and isinstance(data["value"], str):
        return data["value"]
    return json.dumps(dict(data), sort_keys=True, separators=(",", ":"))


class VaultBackend:
    """Secrets from Vault for one environment (see module docstring)."""

    name = "vault"

    def __init__(
        self,
        environment: Environment,
        client: Any,
        *,
        kv_mount: str = "secret",
        kv_prefix: str | None = None,
        dynamic: Mapping[str, DynamicSecret] | None = None,
    ) -> None:
        self.environment = environment
        self.client = client
        self.kv_mount = kv_mount
        self.kv_prefix = kv_prefix if kv_prefix is not None else f"clearance/{environment.value}"
        self.dynamic = dict(dynamic or {})

    def issue(self, spec: CredentialSpec, now: datetime) -> Issued:  # noqa: ARG002 - Backend shape
        """Mint a leased dynamic secret, or read the KV v2 secret, for ``spec``."""
        import hvac.exceptions

        try:
            if spec.secret in self.dynamic:
                return self._dynamic(self.dynamic[spec.secret], spec)
            return self._kv(spec)
        except (hvac.exceptions.VaultError, OSError) as exc:
            # The exception text can echo request paths but never secret values; keep only its type.
            raise CredentialError(
                f"vault could not issue the {self.environment.value} secret `{spec.secret}` "
                f"({type(exc).__name__})"
            ) from None

    def _kv(self, spec: CredentialSpec) -> Issued:
        response = self.client.secrets.kv.v2.read_secret_version(
            path=f"{self.kv_prefix}/{spec.secret}",
            mount_point=self.kv_mount,
            raise_on_deleted_version=True,
        )
        return Issued(
            secret=Secret(_value(response["data"]["data"])), backend_ref=None, ttl=spec.ttl
        )

    def _dynamic(self, where: DynamicSecret, spec: CredentialSpec) -> Issued:
        if where.method == "GET":
            response = self.client.read(where.path)
        else:
            params = dict(where.params)
            if where.ttl_param:
                params[where.ttl_param] = f"{int(spec.ttl.total_seconds())}s"
            response = self.client.write_data(where.path, data=params)
        if not response or not response.get("lease_id"):
            raise CredentialError(
                f"vault path for `{spec.secret}` returned no lease",
                hint="configure the secrets engine (or the pki role's generate_lease) to issue leases",
            )
        ttl = min(spec.ttl, timedelta(seconds=int(response.get("lease_duration") or 0)) or spec.ttl)
        return Issued(
            secret=Secret(_value(response["data"])), backend_ref=response["lease_id"], ttl=ttl
        )

    def revoke(self, backend_ref: str) -> None:
        """Revoke the Vault lease ``backend_ref`` now."""
        import hvac.exceptions

        try:
            self.client.sys.revoke_lease(lease_id=backend_ref)
        except (hvac.exceptions.VaultError, OSError) as exc:
            raise CredentialError(
                f"vault could not revoke a lease ({type(exc).__name__})",
                hint="revoke it by hand with `vault lease revoke` and check the gate's token",
            ) from None
