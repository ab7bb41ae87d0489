"""Load a shipped example's script (``examples/<name>/run.py``) as a module, as a user runs it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str) -> ModuleType:
    """``examples/<name>/run.py``, imported under a module name of its own."""
    path = EXAMPLES / name / "run.py"
    spec = importlib.util.spec_from_file_location(f"{name.replace('-', '_')}_example", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
