"""Reading an ``mcp.json``: stdio and HTTP entries, environment variables, and clear refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp import StdioServerParameters

from clearance.errors import ConfigError
from clearance.integrations.mcp_downstream import HTTPServer, load_upstreams
from clearance.integrations.mcp_front import check_bind, transport_security

ENV = {"BANK_TOKEN": "t0k", "DATA": "/srv/data"}


def servers(tmp_path: Path, entries: dict[str, Any]) -> Path:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": entries}), "utf-8")
    return path


def test_stdio_and_http_entries_with_both_variable_spellings(tmp_path: Path) -> None:
    path = servers(
        tmp_path,
        {
            "files": {"command": "files-mcp", "args": ["--root", "${DATA}"], "env": {"K": "x"}},
            "bank": {
                "type": "http",
                "url": "https://bank.example/mcp",
                "headers": {"Authorization": "Bearer ${env:BANK_TOKEN}"},
                "timeout": 5,
            },
            "docs": {"url": "http://127.0.0.1:9000/mcp"},
        },
    )
    files, bank, docs = load_upstreams(path, environ=ENV)
    assert files.server == StdioServerParameters(
        command="files-mcp", args=["--root", "/srv/data"], env={"K": "x"}
    )
    assert bank.server == HTTPServer(
        url="https://bank.example/mcp", headers={"Authorization": "Bearer t0k"}, timeout_s=5.0
    )
    assert docs.server == HTTPServer(url="http://127.0.0.1:9000/mcp")


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"a": {"command": "x", "headrs": {}}}, "unknown keys `headrs`"),
        ({"a": {"type": "sse", "url": "http://h/sse"}}, "type `sse` is not supported"),
        ({"a": {"args": ["x"]}}, "needs `command` (stdio) or `url` (HTTP)"),
        ({"a": {"url": "file:///etc/passwd"}}, "must be an http:// or https:// URL"),
        ({"a": {"url": "http://h/mcp", "timeout": 0}}, "timeout must be a positive number"),
        ({"a": {"url": "http://h/mcp", "headers": {"X": "${env:NOPE}"}}}, "`NOPE` is not set"),
        ({"a__b": {"command": "x"}}, "without `__`"),
        ({"a": "npx server"}, "is not an object"),
        ({}, "has no `mcpServers` object"),
    ],
)
def test_a_bad_entry_is_refused_naming_where_and_what(
    tmp_path: Path, entries: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_upstreams(servers(tmp_path, entries), environ=ENV)
    assert message in str(caught.value)
    assert "mcp.json" in str(caught.value)


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text("{not json", "utf-8")
    with pytest.raises(ConfigError, match="cannot read the MCP server list"):
        load_upstreams(path)


def test_listening_beyond_loopback_needs_consent_and_the_names_clients_use() -> None:
    check_bind("127.0.0.1")
    check_bind("::1")
    with pytest.raises(ConfigError, match="beyond this machine"):
        check_bind("0.0.0.0")
    with pytest.raises(ConfigError, match="needs the host names clients use"):
        check_bind("0.0.0.0", unsafe_allow_remote=True)
    check_bind("0.0.0.0", unsafe_allow_remote=True, public_names=("mcp.example.org",))


def test_host_checks_admit_only_the_served_names() -> None:
    local = transport_security("127.0.0.1", 8788)
    assert local.enable_dns_rebinding_protection
    assert local.allowed_hosts == ["127.0.0.1:8788", "localhost:8788"]
    remote = transport_security("10.0.0.5", 8788, ("mcp.example.org",))
    assert remote.allowed_hosts == ["10.0.0.5:8788", "mcp.example.org:8788", "mcp.example.org"]
    assert "https://mcp.example.org" in remote.allowed_origins


def test_a_downstream_that_cannot_start_stops_the_proxy_with_a_clear_error(
    tmp_path: Path,
) -> None:
    from typer.testing import CliRunner

    from clearance.cli.commands.mcp import app

    path = servers(tmp_path, {"bank": {"command": str(tmp_path / "no-such-server")}})
    env = {
        "CLEARANCE_AGENT_ID": "a-1",
        "CLEARANCE_SESSION_ID": "s-1",
        "CLEARANCE_AGENT_KEY": "clr_agent_unused",
    }
    result = CliRunner().invoke(
        app,
        ["proxy", "--upstreams", str(path), "--gate-url", "http://127.0.0.1:9"],
        env=env,
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)
    assert "downstream MCP server `bank` could not be reached" in str(result.exception)
    assert "no-such-server" in str(result.exception)


def test_wrap_routes_a_client_through_the_gateway_and_keeps_the_originals(
    tmp_path: Path,
) -> None:
    from typer.testing import CliRunner

    from clearance.cli.commands.mcp import app

    original = {
        "mcpServers": {
            "files": {"command": "files-mcp", "args": ["--root", "/srv"]},
            "bank": {"type": "http", "url": "http://127.0.0.1:9100/mcp",
                     "headers": {"Authorization": "Bearer ${env:BANK_TOKEN}"}},
        },
        "otherSetting": True,
    }  # fmt: skip
    config = tmp_path / ".mcp.json"
    config.write_text(json.dumps(original), "utf-8")
    upstreams = tmp_path / "mcp.upstream.json"
    args = ["wrap", str(config), "--upstreams", str(upstreams), "--data-dir", str(tmp_path)]

    first = CliRunner().invoke(app, [*args, "--cursor"])
    again = CliRunner().invoke(app, args)

    assert first.exit_code == 0, first.output
    wrapped = json.loads(config.read_text("utf-8"))
    assert wrapped["otherSetting"] is True
    assert list(wrapped["mcpServers"]) == ["clearance"]
    entry = wrapped["mcpServers"]["clearance"]
    assert entry["args"][:4] == ["mcp", "proxy", "--upstreams", str(upstreams.resolve())]
    assert entry["env"] == {
        "CLEARANCE_AGENT_ID": "${env:CLEARANCE_AGENT_ID}",
        "CLEARANCE_SESSION_ID": "${env:CLEARANCE_SESSION_ID}",
    }
    assert json.loads(upstreams.read_text("utf-8")) == {"mcpServers": original["mcpServers"]}
    assert upstreams.stat().st_mode & 0o777 == 0o600
    backup = tmp_path / ".mcp.json.before-clearance"
    assert json.loads(backup.read_text("utf-8")) == original
    [files, bank] = load_upstreams(upstreams, environ={"BANK_TOKEN": "t"})
    assert isinstance(files.server, StdioServerParameters)
    assert isinstance(bank.server, HTTPServer)
    assert bank.server.headers == {"Authorization": "Bearer t"}
    assert again.exit_code != 0
    assert "already has a `clearance` server" in str(again.exception)
    assert json.loads(config.read_text("utf-8")) == wrapped


def test_wrap_refuses_a_bad_config_and_changes_nothing(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from clearance.cli.commands.mcp import app

    config = servers(tmp_path, {"files": {"command": "files-mcp", "headrs": {}}})
    before = config.read_bytes()
    upstreams = tmp_path / "up.json"
    result = CliRunner().invoke(app, ["wrap", str(config), "--upstreams", str(upstreams)])
    assert result.exit_code != 0
    assert "unknown keys `headrs`" in str(result.exception)
    assert config.read_bytes() == before
    assert not upstreams.exists()
    assert not (tmp_path / "mcp.json.before-clearance").exists()
