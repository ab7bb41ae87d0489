"""Which secret backend serves each environment, from settings: local files or HashiCorp Vault.

The default needs no configuration: each environment reads a JSON secrets file of the data
directory (``secrets/staging.json``, ``secrets/production.json``, mode 0600, readable only by the
gate's user) and then the gate process's ``CLEARANCE_SECRET_<ENVIRONMENT>_<NAME>`` variables. With
``backend = "vault"`` each environment reads Vault through its **own** token, so a token for
staging paths can never read a production secret even if a path is misconfigured.

In ``clearance.toml``::

    [credentials]
    backend = "vault"

    [credentials.vault]
    url = "https://vault.internal:8200"

    [credentials.vault.environments.production]
    token_file = "/etc/clearance/vault-production.token"
    dynamic = { bank_api = { path = "pki/issue/agent", method = "POST", ttl_param = "ttl" } }

Example::

    backends = open_backends(CredentialSettings(), data_dir=Path(".clearance"))
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from clearance.credentials.backend import Backend
from clearance.credentials.local import LocalBackend
from clearance.credentials.vault import DynamicSecret, VaultBackend
from clearance.errors import ConfigError
from clearance.model.session import Environment

VAULT_TOKEN_VARIABLE = "CLEARANCE_VAULT_TOKEN_{environment}"  # noqa: S105 - a variable name


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DynamicSecretSettings(_Section):
    """Where Vault mints a leased secret (``DynamicSecret``)."""

    path: str = Field(min_length=1, max_length=512)
    method: Literal["GET", "POST"] = "GET"
    params: dict[str, Any] = Field(default_factory=dict)
    ttl_param: str | None = Field(default=None, max_length=64)


class VaultEnvironmentSettings(_Section):
    """One environment's Vault access: its own token, KV prefix and dynamic secrets."""

    token_file: Path | None = Field(
        default=None,
        description=(
            "file holding this environment's Vault token (mode 0600); default: the gate's "
            "CLEARANCE_VAULT_TOKEN_<ENVIRONMENT> variable"
        ),
    )
    kv_prefix: str | None = Field(
        default=None, max_length=512, description="KV v2 path prefix; default clearance/<env>"
    )
    dynamic: dict[str, DynamicSecretSettings] = Field(default_factory=dict)


class VaultSettings(_Section):
    """The Vault server and, per environment, how the gate reaches its secrets."""

    url: str = Field(min_length=1, max_length=2048)
    kv_mount: str = Field(default="secret", min_length=1, max_length=256)
    namespace: str | None = Field(default=None, max_length=256)
    environments: dict[Environment, VaultEnvironmentSettings] = Field(
        default_factory=dict,
        description="the environments Vault serves; a session of any other gets no credential",
    )


class CredentialSettings(_Section):
    """Where the credential broker takes secrets from (see module docstring)."""

    backend: Literal["local", "vault"] = "local"
    secrets_dir: Path | None = Field(
        default=None,
        description="local backend: directory of <environment>.json; default <data_dir>/secrets",
    )
    vault: VaultSettings | None = None


def secrets_path(data_dir: Path, environment: Environment, settings: CredentialSettings) -> Path:
    """The local secrets file of ``environment``."""
    folder = settings.secrets_dir if settings.secrets_dir is not None else data_dir / "secrets"
    return folder / f"{environment.value}.json"


def _vault_token(environment: Environment, section: VaultEnvironmentSettings) -> str:
    if section.token_file is None:
        variable = VAULT_TOKEN_VARIABLE.format(environment=environment.value.upper())
        token = os.environ.get(variable, "")
        if not token:
            raise ConfigError(
                f"no Vault token for {environment.value}",
                hint=f"set {variable} in the gate's environment or "
                f"credentials.vault.environments.{environment.value}.token_file",
            )
        return token
    path = section.token_file
    try:
        mode = path.stat().st_mode
        token = path.read_text("utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the Vault token file `{path}`") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"the Vault token file `{path}` is readable by others (mode {stat.S_IMODE(mode):o})",
            hint=f"run `chmod 600 {path}`",
        )
    if not token:
        raise ConfigError(f"the Vault token file `{path}` is empty")
    return token


def _vault_backends(vault: VaultSettings) -> list[Backend]:
    import hvac

    backends: list[Backend] = []
    for environment, section in sorted(vault.environments.items()):
        client = hvac.Client(
            url=vault.url, token=_vault_token(environment, section), namespace=vault.namespace
        )
        backends.append(
            VaultBackend(
                environment,
                client,
                kv_mount=vault.kv_mount,
                kv_prefix=section.kv_prefix,
                dynamic={
                    name: DynamicSecret(d.path, d.method, dict(d.params), d.ttl_param)
                    for name, d in section.dynamic.items()
                },
            )
        )
    return backends


def open_backends(settings: CredentialSettings, *, data_dir: Path) -> list[Backend]:
    """One backend per environment, as ``settings`` say; ``ConfigError`` when they cannot work."""
    if settings.backend == "vault":
        if settings.vault is None:
            raise ConfigError(
                "credentials.backend is `vault` but credentials.vault is not set",
                hint="add a [credentials.vault] section with the server url",
            )
        if not settings.vault.environments:
            raise ConfigError(
                "credentials.vault names no environment",
                hint="add [credentials.vault.environments.<environment>] for each one it serves",
            )
        return _vault_backends(settings.vault)
    return [
        LocalBackend(environment, path=secrets_path(data_dir, environment, settings))
        for environment in Environment
    ]
