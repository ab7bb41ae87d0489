"""Credential backends built from the service settings: local 0600 files, or Vault per environment.

The Vault case reads a settings file shaped like the one in docs/service.md and fetches real KV v2
values from an OpenBao dev server (the fixture of ``test_vault_broker``): each environment through
its own token, so the token source is part of what is tested.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.integration.test_vault_broker import ROOT_TOKEN, vault_url  # noqa: F401 - fixture

from clearance.credentials import CredentialSpec
from clearance.credentials.config import CredentialSettings, open_backends
from clearance.errors import ConfigError, CredentialError
from clearance.model.session import Environment
from clearance.server.settings import load_settings

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
VENDOR = CredentialSpec(tool="pay_vendor", secret="vendor_api")


def _by_environment(backends: list) -> dict[Environment, object]:  # type: ignore[type-arg]
    return {b.environment: b for b in backends}


def test_local_default_reads_each_environments_private_file(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for environment, value in (("staging", "stg-1"), ("production", "prod-9")):
        path = secrets / f"{environment}.json"
        path.write_text(json.dumps({"vendor_api": value}))
        path.chmod(0o600)
    backends = _by_environment(open_backends(CredentialSettings(), data_dir=tmp_path))
    assert set(backends) == set(Environment)
    assert backends[Environment.STAGING].issue(VENDOR, NOW).secret.reveal() == "stg-1"  # type: ignore[attr-defined]
    assert backends[Environment.PRODUCTION].issue(VENDOR, NOW).secret.reveal() == "prod-9"  # type: ignore[attr-defined]
    with pytest.raises(CredentialError, match="no development secret"):
        backends[Environment.DEVELOPMENT].issue(VENDOR, NOW)  # type: ignore[attr-defined]
    (secrets / "production.json").chmod(0o644)
    with pytest.raises(CredentialError, match="readable by others"):
        backends[Environment.PRODUCTION].issue(VENDOR, NOW)  # type: ignore[attr-defined]


def test_vault_from_a_settings_file_uses_one_token_per_environment(
    vault_url: str,  # noqa: F811 - fixture
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token_file = tmp_path / "staging.token"
    token_file.write_text(ROOT_TOKEN + "\n")
    token_file.chmod(0o600)
    monkeypatch.setenv("CLEARANCE_VAULT_TOKEN_PRODUCTION", ROOT_TOKEN)
    config = tmp_path / "clearance.toml"
    config.write_text(
        f"""
[credentials]
backend = "vault"

[credentials.vault]
url = "{vault_url}"

[credentials.vault.environments.staging]
token_file = "{token_file}"

[credentials.vault.environments.production]
"""
    )
    settings = load_settings(config)
    backends = _by_environment(open_backends(settings.credentials, data_dir=tmp_path))
    assert set(backends) == {Environment.STAGING, Environment.PRODUCTION}
    assert backends[Environment.STAGING].issue(VENDOR, NOW).secret.reveal() == "stg-vault-1111"  # type: ignore[attr-defined]
    assert (
        backends[Environment.PRODUCTION].issue(VENDOR, NOW).secret.reveal()  # type: ignore[attr-defined]
        == "prod-vault-9999"
    )


def test_vault_settings_that_cannot_work_are_refused_before_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLEARANCE_VAULT_TOKEN_PRODUCTION", raising=False)
    with pytest.raises(ConfigError, match=r"credentials\.vault is not set"):
        open_backends(CredentialSettings(backend="vault"), data_dir=tmp_path)
    no_environments = CredentialSettings.model_validate(
        {"backend": "vault", "vault": {"url": "http://127.0.0.1:1"}}
    )
    with pytest.raises(ConfigError, match="names no environment"):
        open_backends(no_environments, data_dir=tmp_path)
    no_token = CredentialSettings.model_validate(
        {
            "backend": "vault",
            "vault": {"url": "http://127.0.0.1:1", "environments": {"production": {}}},
        }
    )
    with pytest.raises(ConfigError, match="CLEARANCE_VAULT_TOKEN_PRODUCTION"):
        open_backends(no_token, data_dir=tmp_path)
    shared = tmp_path / "open.token"
    shared.write_text("s.token")
    shared.chmod(0o644)
    readable = CredentialSettings.model_validate(
        {
            "backend": "vault",
            "vault": {
                "url": "http://127.0.0.1:1",
                "environments": {"staging": {"token_file": str(shared)}},
            },
        }
    )
    with pytest.raises(ConfigError, match="readable by others"):
        open_backends(readable, data_dir=tmp_path)


def test_an_unknown_credentials_key_is_a_settings_error(tmp_path: Path) -> None:
    config = tmp_path / "clearance.toml"
    config.write_text('[credentials]\nbackend = "local"\nsecret_dir = "typo"\n')
    with pytest.raises(ConfigError, match=r"credentials\.secret_dir"):
        load_settings(config)
