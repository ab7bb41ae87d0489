"""``clearance import claude-permissions``: Claude Code rules become a policy that decides real calls.

Every policy here is generated from settings, loaded, activated in a real gate and asked about
requests mapped exactly as the hooks map them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath

import pytest
import yaml
from tests.integration.integrations.hook_kit import CLAUDE_SETTINGS, PROJECT, imported_gate
from typer.testing import CliRunner

from clearance.cli.main import app
from clearance.errors import ConfigError
from clearance.integrations.claude_permissions import translate
from clearance.integrations.errors import PermissionRulesError
from clearance.model.decision import Outcome
from clearance.policy import load_policy

runner = CliRunner()


def test_each_list_keeps_its_meaning(tmp_path: Path) -> None:
    with imported_gate(tmp_path / "d") as gate:
        tests = gate.decide("Bash", {"command": "npm run test -- --watch=false"})
        assert (tests.outcome, tests.rule) == (Outcome.PERMIT, "claude-allow-1")
        env = gate.decide("Read", {"file_path": f"{PROJECT}/.env"})
        assert (env.outcome, env.rule) == (Outcome.DENY, "claude-deny-1")
        assert env.reason == "Claude Code deny rule `Read(./.env)`"
        push = gate.decide("Bash", {"command": "git push origin main"})
        assert (push.outcome, push.rule) == (Outcome.APPROVAL, "claude-ask-1")
        assert push.approval_id is not None  # an approval request in clearance, not a prompt
        source = gate.decide("Grep", {"pattern": "TODO", "path": f"{PROJECT}/src/app"})
        assert source.outcome is Outcome.PERMIT  # Read rules cover Grep and Glob too
        docs = gate.decide("WebFetch", {"url": "https://docs.python.org/3/library/re.html"})
        assert docs.outcome is Outcome.PERMIT
        issue = gate.decide("mcp__github__get_issue", {"number": 7})
        assert issue.outcome is Outcome.PERMIT


def test_deny_beats_allow_as_in_claude_code(tmp_path: Path) -> None:
    with imported_gate(tmp_path / "d") as gate:
        key = gate.decide("Read", {"file_path": f"{PROJECT}/src/certs/server.pem"})
        assert (key.outcome, key.rule) == (Outcome.DENY, "claude-deny-4")


def test_unmatched_calls_get_the_chosen_default(tmp_path: Path) -> None:
    with imported_gate(tmp_path / "deny") as gate:
        other = gate.decide("Bash", {"command": "make build"})
        assert (other.outcome, other.rule) == (Outcome.DENY, "default")
        search = gate.decide("WebSearch", {"query": "cel spec"})
        assert search.outcome is Outcome.DENY  # declared, so not `unknown-tool`
    with imported_gate(tmp_path / "ask", default="approval", approvers=["op-lead"]) as gate:
        other = gate.decide("Bash", {"command": "make build"})
        assert (other.outcome, other.rule) == (Outcome.APPROVAL, "default")


def test_whole_server_rules_match_every_tool_of_that_server(tmp_path: Path) -> None:
    settings = {"permissions": {"allow": ["mcp__github__get_issue"], "deny": ["mcp__github"]}}
    imported = translate(settings, source="s.json", root=PROJECT, home=PurePosixPath("/h"))
    assert any("whole MCP server" in note for note in imported.notes)
    with imported_gate(tmp_path / "d", settings) as gate:
        denied = gate.decide("mcp__github__get_issue", {})
        assert (denied.outcome, denied.rule) == (Outcome.DENY, "claude-deny-1")


def test_every_specifier_form_decides_as_written(tmp_path: Path) -> None:
    settings = {
        "permissions": {
            "allow": ["Task(reviewer)", "WebFetch(domain:*.example.com)", "Edit(docs/*.md)",
                      "Bash(git status)", "TodoWrite"],
            "deny": ["Read(~/.aws/**)", "Read(//etc/**)", "Edit(./docs/secret/)"],
        }
    }  # fmt: skip
    cases = [
        ("Task", {"prompt": "review", "subagent_type": "reviewer"}, Outcome.PERMIT),
        ("Task", {"prompt": "deploy", "subagent_type": "deployer"}, Outcome.DENY),
        ("WebFetch", {"url": "https://api.example.com/v1"}, Outcome.PERMIT),
        ("WebFetch", {"url": "https://example.com.evil.net/"}, Outcome.DENY),
        ("Write", {"file_path": f"{PROJECT}/docs/guide.md", "content": "x"}, Outcome.PERMIT),
        ("Edit", {"file_path": f"{PROJECT}/docs/deep/guide.md"}, Outcome.DENY),
        ("Edit", {"file_path": f"{PROJECT}/docs/secret/keys.md"}, Outcome.DENY),
        ("Bash", {"command": "git status"}, Outcome.PERMIT),
        ("Bash", {"command": "git status --porcelain"}, Outcome.DENY),
        ("TodoWrite", {"todos": []}, Outcome.PERMIT),
        ("Read", {"file_path": "/home/dev/.aws/credentials"}, Outcome.DENY),
        ("Read", {"file_path": "/etc/shadow"}, Outcome.DENY),
    ]
    with imported_gate(tmp_path / "d", settings) as gate:
        got = [(tool, args, gate.decide(tool, args).outcome) for tool, args, _ in cases]
    assert got == cases


def test_untranslatable_rules_are_reported_not_dropped() -> None:
    settings = {
        "permissions": {
            "allow": ["Bash(git status)", "Frobnicate(x)"],
            "deny": ["WebFetch(https://evil.example)", "Read(./[ab].txt)", 7],
        }
    }
    with pytest.raises(PermissionRulesError) as caught:
        translate(settings, source=".claude/settings.json", root=PROJECT, home=PurePosixPath("/h"))
    lines = str(caught.value).splitlines()
    assert len(lines) == 4
    assert lines[0].startswith(
        ".claude/settings.json:permissions.deny[0]: unsupported rule `WebFetch(https://evil.example)`"
    )
    assert "(hint: write `WebFetch(domain:example.com)`)" in lines[0]
    assert "permissions.deny[1]" in lines[1]
    assert "permissions.deny[2]: a rule is not text" in lines[2]
    assert "`Frobnicate` is not a Claude Code tool" in lines[3]
    skipped = translate(
        settings, source="s.json", root=PROJECT, home=PurePosixPath("/h"), skip_unsupported=True
    )
    assert sum(note.startswith("skipped: ") for note in skipped.notes) == 4
    assert [r["id"] for r in skipped.document["rules"]] == ["claude-allow-1"]
    load_policy(skipped.to_yaml(), source_name="policy.yaml")


def test_a_settings_file_without_permissions_is_refused() -> None:
    with pytest.raises(ConfigError, match="no `permissions` object"):
        translate({"model": "opus"}, source="s.json", root=PROJECT, home=PurePosixPath("/h"))


# --- the command ------------------------------------------------------------------------------
def write_settings(tmp_path: Path, settings: object) -> Path:
    folder = tmp_path / "shop" / ".claude"
    folder.mkdir(parents=True)
    path = folder / "settings.json"
    path.write_text(json.dumps(settings))
    return path


def test_command_writes_a_policy_that_lints(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, CLAUDE_SETTINGS)
    out = tmp_path / "policy.yaml"
    result = runner.invoke(app, ["import", "claude-permissions", str(settings), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}: 11 rules, policy sha256:" in result.output
    text = out.read_text()
    assert text.startswith("# clearance policy imported from Claude Code permissions")
    # relative path rules are anchored at the project (the folder holding `.claude/`)
    rules = {rule["id"]: rule for rule in yaml.safe_load(text)["rules"]}
    anchored = json.dumps("^" + re.escape(f"{tmp_path}/shop") + "/\\.env$")
    assert rules["claude-deny-1"]["when"] == f"re_search(request.target, {anchored})"
    lint = runner.invoke(app, ["policy", "lint", str(out)])
    assert lint.exit_code == 0, lint.output
    assert "ok - 13 tools" in lint.output


def test_command_never_overwrites_without_force(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, CLAUDE_SETTINGS)
    out = tmp_path / "policy.yaml"
    out.write_text("# my hand-written policy\n")
    result = runner.invoke(app, ["import", "claude-permissions", str(settings), "-o", str(out)])
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)
    assert "already exists" in str(result.exception)
    assert out.read_text() == "# my hand-written policy\n"
    forced = runner.invoke(
        app, ["import", "claude-permissions", str(settings), "-o", str(out), "--force"]
    )
    assert forced.exit_code == 0, forced.output
    assert "claude-deny-1" in out.read_text()


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("{not json", [], "not JSON"),
        (json.dumps({"permissions": {"deny": ["Bash(rm *"]}}), [], "cannot read the rule"),
        (json.dumps(CLAUDE_SETTINGS), ["--default", "permit"], "`--default permit`"),
    ],
)
def test_command_errors_say_what_and_where(
    tmp_path: Path, content: str, args: list[str], message: str
) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text(content)
    out = tmp_path / "policy.yaml"
    result = runner.invoke(
        app, ["import", "claude-permissions", str(settings), "-o", str(out), *args]
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)
    assert message in str(result.exception)
    assert result.exception.hint
    assert not out.exists()
