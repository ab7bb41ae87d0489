"""Fixtures of the adapter tests (defined in ``kit``, shared with the benchmark)."""

from tests.integration.integrations.kit import data_dir, runtime, session

__all__ = ["data_dir", "runtime", "session"]
