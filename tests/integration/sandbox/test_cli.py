"""``clearance sandbox run|check`` through Typer's runner, against the real sandbox."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from clearance.cli.commands.sandbox import app, parse_size
from clearance.errors import ConfigError
from clearance.sandbox import Sandbox

pytestmark = pytest.mark.sandbox


def test_run_passes_output_and_exit_code_through(sandbox: Sandbox) -> None:
    result = CliRunner().invoke(app, ["run", "--", "/bin/sh", "-c", "echo hi; exit 3"])
    assert result.exit_code == 3
    assert result.stdout == "hi\n"


def test_run_reports_a_timeout_with_exit_124(sandbox: Sandbox) -> None:
    result = CliRunner().invoke(app, ["run", "--timeout", "1", "--", "sleep", "30"])
    assert result.exit_code == 124
    assert "stopped: timeout" in result.output


def test_check_blocks_every_escape_on_this_host(sandbox: Sandbox) -> None:
    result = CliRunner().invoke(app, ["check"])
    assert result.exit_code == 0, result.output
    assert "EXPOSED" not in result.output
    assert "attempts blocked" in result.output


@pytest.mark.parametrize(("text", "size"), [("512M", 512 << 20), ("1g", 1 << 30), ("4096", 4096)])
def test_sizes_parse_with_binary_units(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_bad_size_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a size"):
        parse_size("lots")
