"""The embedded secret backend: a 0600 JSON file or the gate process's own environment.

One ``LocalBackend`` serves one environment. Its file maps secret names to values
(``{"stripe_key": "sk_live_..."}``) and must not be readable by group or others; its environment
variables are ``CLEARANCE_SECRET_<ENVIRONMENT>_<NAME>`` (upper-cased, ``-``/``.`` as ``_``) read
from the **gate's** process, which the agent does not share. Including the environment in the
variable name keeps staging and production values apart even in one process.

Local secrets are static: ``ttl`` bounds how long the broker's lease is considered live, but the
value itself does not change when the lease ends. Use Vault dynamic secrets where that matters.

Example::

    staging = LocalBackend(Environment.STAGING, path=Path("/etc/clearance/secrets/staging.json"))
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from clearance.credentials.backend import Issued
from clearance.credentials.scopes import CredentialSpec
from clearance.credentials.secret import Secret
from clearance.errors import CredentialError
from clearance.model.session import Environment

ENV_PREFIX = "CLEARANCE_SECRET_"


def env_name(environment: Environment, secret: str) -> str:
    """The environment variable holding ``secret`` for ``environment``."""
    return ENV_PREFIX + re.sub(r"[^A-Z0-9]", "_", f"{environment.value}_{secret}".upper())


class LocalBackend:
    """Secrets from a private file, then from the gate's environment, for one environment."""

    name = "local"

    def __init__(
        self,
        environment: Environment,
        *,
        path: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.environment = environment
        self.path = path
        self._environ = os.environ if environ is None else environ

    def _from_file(self, secret: str) -> str | None:
        if self.path is None or not self.path.exists():
            return None
        mode = self.path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise CredentialError(
                f"the secrets file `{self.path}` is readable by others (mode {stat.S_IMODE(mode):o})",
                hint=f"run `chmod 600 {self.path}`",
            )
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise CredentialError(f"cannot read the secrets file `{self.path}`") from exc
        if not isinstance(data, dict):
            raise CredentialError(f"the secrets file `{self.path}` is not a JSON object")
        value = data.get(secret)
        return value if isinstance(value, str) else None

    def issue(self, spec: CredentialSpec, now: datetime) -> Issued:  # noqa: ARG002 - Backend shape
        """The stored value of ``spec.secret`` for this backend's environment."""
        value = self._from_file(spec.secret)
        if value is None:
            value = self._environ.get(env_name(self.environment, spec.secret))
        if not value:
            raise CredentialError(
                f"no {self.environment.value} secret `{spec.secret}` is configured",
                hint=f"add it to the secrets file or set {env_name(self.environment, spec.secret)} "
                "in the gate's environment",
            )
        return Issued(secret=Secret(value), backend_ref=None, ttl=spec.ttl)

    def revoke(self, backend_ref: str) -> None:
        """Static secrets have no lease to end."""
