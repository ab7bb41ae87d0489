"""The composition root's data directory: where the store, keys and policy of one gate live.

Layout of a data directory (created by ``clearance init``)::

    .clearance/
      clearance.db        the embedded SQLite store (sessions, bundles, decisions, approvals, ...)
      audit.db            the audit shard of this node (hash chain, Merkle tree, checkpoints)
      keys/audit.key      Ed25519 audit signing key, mode 0600
      keys/mask.key       HMAC masking key, mode 0600
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from clearance.errors import ConfigError
from clearance.gate.gate import Gate
from clearance.store import Store, open_store

DEFAULT_DATA_DIR = Path(".clearance")


@dataclass
class Runtime:
    """Everything one gate process needs, built from a data directory."""

    data_dir: Path
    store: Store
    gate: Gate
    closers: list[object] = field(default_factory=list)

    def close(self) -> None:
        """Close the store and anything else opened for this runtime."""
        for closer in reversed(self.closers):
            close = getattr(closer, "close", None)
            if callable(close):
                close()
        self.store.close()


def store_url_for(data_dir: Path, store_url: str | None) -> str:
    """The store URL: explicit, or the embedded SQLite file of the data directory."""
    return store_url or f"sqlite:///{data_dir / 'clearance.db'}"


def open_runtime(data_dir: Path, *, store_url: str | None = None) -> Runtime:
    """Open the gate of ``data_dir`` with the policy the store names as active."""
    if store_url is None and not (data_dir / "clearance.db").exists():
        raise ConfigError(
            f"no clearance data directory at `{data_dir}`",
            hint="create one with `clearance init` or pass `--data-dir`",
        )
    store = open_store(store_url_for(data_dir, store_url))
    gate = Gate(store)
    runtime = Runtime(data_dir=data_dir, store=store, gate=gate)
    gate.load_active()
    return runtime
