"""The README's commands and its in-process example must stay true."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text("utf-8")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.DOTALL)


def test_readme_opens_with_the_two_commands() -> None:
    bash = _blocks("bash")
    assert bash[0].strip() == "pip install -e '.[all]' && clearance demo"
    assert bash[1].strip() == "bash scripts/test"
    ci = (ROOT / ".ci" / "run").read_text("utf-8")
    assert "scripts/test" in ci


def test_in_process_example_runs_and_denies_by_scope(tmp_path: Path) -> None:
    code = _blocks("python")[0]
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["DENY", "scope"]
