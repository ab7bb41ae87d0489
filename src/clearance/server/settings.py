"""Settings of the sidecar service: a TOML or YAML file, overridden by ``CLEARANCE_*`` variables.

Precedence, highest first: keyword arguments (the CLI's flags), environment variables
(``CLEARANCE_PORT=8700``, nested with ``__``), the settings file, the defaults below. Unknown keys
are errors, so a misspelt limit never silently falls back to its default::

    settings = load_settings(Path("clearance.toml"), port=8700)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

from clearance.credentials.config import CredentialSettings
from clearance.errors import ConfigError


class ServerSettings(BaseSettings):
    """Every limit and switch of the HTTP service, with its default."""

    model_config = SettingsConfigDict(
        env_prefix="CLEARANCE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    host: str = Field(default="127.0.0.1", description="address to listen on")
    port: int = Field(default=8700, ge=0, le=65535, description="TCP port (0 picks a free one)")
    data_dir: Path = Field(default=Path(".clearance"), description="store, keys and audit shards")
    store_url: str | None = Field(
        default=None, description="store url; default sqlite:///<data_dir>/clearance.db"
    )
    replica_id: str = Field(
        default="node",
        pattern=r"^[a-z0-9.-]+$",
        description=(
            "names this process's audit shard; replicas sharing a PostgreSQL store need one each"
        ),
    )
    tls: bool = Field(
        default=False,
        description="served over TLS (directly or behind a TLS proxy): session cookies get Secure",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024, gt=0, description="larger request bodies are refused with 413"
    )
    session_ttl_s: int = Field(default=8 * 3600, gt=0, description="dashboard session lifetime")
    login_attempts_per_minute: float = Field(
        default=10.0, gt=0, description="login attempts allowed per client address and user"
    )
    agent_requests_per_second: float = Field(
        default=5000.0, gt=0, description="sustained agent API rate per key"
    )
    agent_burst: int = Field(default=10000, gt=0, description="agent API burst per key")
    decide_in_threadpool: bool = Field(
        default=True,
        description=(
            "run Gate.decide() in a worker thread: concurrent decisions then share audit group "
            "commits and the event loop keeps accepting (bench/sidecar.py measures both)"
        ),
    )
    decide_threads: int = Field(
        default=8,
        gt=0,
        le=1024,
        description=(
            "worker threads for Gate.decide(): the most decisions in flight at once, and so the "
            "largest audit group commit concurrent requests share; more threads than this only "
            "contend for the interpreter lock (bench/sidecar.py --decide-threads measures it)"
        ),
    )
    hook_max_wait_s: float = Field(
        default=600.0,
        ge=0,
        le=3600,
        description=(
            "the longest the hook endpoint holds a request open waiting for an approval, whatever "
            "the hook's own ?timeout= allows (0: never wait, answer deny at once)"
        ),
    )
    shadow_sample: int = Field(
        default=500, gt=0, le=100_000, description="recent decisions a policy dry-run replays"
    )
    credentials: CredentialSettings = Field(
        default_factory=CredentialSettings,
        description="where the credential broker takes secrets from (local files or Vault)",
    )


def load_settings(path: Path | None = None, **overrides: Any) -> ServerSettings:
    """Read settings from ``path`` (``.toml``, ``.yaml`` or ``.yml``), the environment and overrides.

    Raises ``ConfigError`` naming the key for unknown keys, wrong types and unreadable files.
    """
    if path is not None and not path.is_file():
        raise ConfigError(f"settings file `{path}` does not exist")
    if path is not None and path.suffix not in {".toml", ".yaml", ".yml"}:
        raise ConfigError(
            f"settings file `{path}` is neither TOML nor YAML",
            hint="name it clearance.toml or clearance.yaml",
        )

    class _FromFile(ServerSettings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            # No .env files or secrets directory: settings come from the file and the environment.
            del dotenv_settings, file_secret_settings
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if path is not None and path.suffix == ".toml":
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
            elif path is not None:
                sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
            return tuple(sources)

    try:
        loaded = _FromFile(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        where = f" in `{path}`" if path is not None else ""
        raise ConfigError(
            f"setting `{key}`{where}: {first['msg']}",
            hint="see docs/service.md for every setting and its type",
        ) from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read settings file `{path}`: {exc}") from exc
    return loaded
