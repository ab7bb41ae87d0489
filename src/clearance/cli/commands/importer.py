"""``clearance import ...``: start a policy from rules users already maintain elsewhere.

``clearance import claude-permissions .claude/settings.json -o policy.yaml`` turns Claude Code's
allow / ask / deny permission rules into a clearance policy (see
``clearance.integrations.claude_permissions``). The generated policy is loaded and compiled before
it is written, so what lands on disk always passes ``clearance policy lint``; an existing output
file is only replaced with ``--force``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal

import typer

from clearance.errors import ConfigError, Location
from clearance.integrations.claude_permissions import translate
from clearance.policy import load_policy


def register(app: typer.Typer) -> None:
    """Add the ``import`` group to the top-level command."""
    group = typer.Typer(
        help="Start a policy from rules kept elsewhere (Claude Code permissions).",
        no_args_is_help=True,
    )
    group.command("claude-permissions")(claude_permissions)
    app.add_typer(group, name="import")


def claude_permissions(
    settings: Annotated[Path, typer.Argument(help="A Claude Code settings.json.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the policy here (default: stdout).")
    ] = None,
    root: Annotated[
        Path | None,
        typer.Option(
            help="Project root for relative path rules (default: the folder holding `.claude/`)."
        ),
    ] = None,
    default: Annotated[
        str, typer.Option(help="Outcome for calls no rule matches: deny or approval.")
    ] = "deny",
    approver: Annotated[
        list[str] | None,
        typer.Option(help="Operator id allowed to approve `ask` rules (repeatable)."),
    ] = None,
    task: Annotated[str, typer.Option(help="The task type granted every tool.")] = "coding",
    skip_unsupported: Annotated[
        bool,
        typer.Option(
            "--skip-unsupported", help="Leave out rules that cannot be translated (listed)."
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing output file.")
    ] = False,
) -> None:
    """Translate Claude Code permission rules into a clearance policy (ask becomes APPROVAL)."""
    mode = _default_outcome(default)
    document = _read_settings(settings)
    project = (root or _project_root(settings)).resolve()
    imported = translate(
        document,
        source=str(settings),
        root=PurePosixPath(project.as_posix()),
        home=PurePosixPath(Path.home().as_posix()),
        task=task,
        default=mode,
        approvers=approver or (),
        skip_unsupported=skip_unsupported,
    )
    text = imported.to_yaml()
    bundle = load_policy(text, source_name=output.name if output else "policy.yaml")
    for note in imported.notes:
        sys.stderr.write(f"note: {note}\n")
    if output is None:
        sys.stdout.write(text)
        return
    if output.exists() and not force:
        raise ConfigError(
            f"`{output}` already exists",
            hint="choose another `--output`, or pass `--force` to replace it",
        )
    output.write_text(text, "utf-8")
    rules = len(imported.document["rules"])
    sys.stdout.write(f"wrote {output}: {rules} rules, policy {bundle.digest}\n")


def _default_outcome(value: str) -> Literal["deny", "approval"]:
    if value == "deny":
        return "deny"
    if value == "approval":
        return "approval"
    raise ConfigError(
        f"`--default {value}` is not an outcome a policy may default to",
        hint="use `deny` or `approval` (never `permit`)",
    )


def _read_settings(path: Path) -> dict[str, object]:
    try:
        parsed = json.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"cannot read `{path}`: {exc.strerror}",
            hint="pass the path of a Claude Code settings.json",
        ) from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"not JSON: {exc.msg}",
            location=Location(file=str(path), line=exc.lineno),
            hint="Claude Code settings are plain JSON (no comments or trailing commas)",
        ) from exc
    if not isinstance(parsed, dict):
        raise ConfigError("the settings are not a JSON object", location=Location(file=str(path)))
    return parsed


def _project_root(settings: Path) -> Path:
    """The project a settings file belongs to: the parent of its ``.claude`` folder if it has one."""
    folder = settings.resolve().parent
    return folder.parent if folder.name == ".claude" else folder
