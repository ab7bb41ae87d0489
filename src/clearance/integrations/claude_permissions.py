"""Claude Code permission rules -> a clearance policy: the rules users already wrote, enforced by the gate.

Pure translation (no I/O): ``clearance import claude-permissions`` reads the settings file and
writes the YAML. The mapping follows Claude Code's own precedence, which is clearance's:

=============  ==========  ==================================================================
Claude Code    clearance   note
=============  ==========  ==================================================================
``deny``       deny        matched widely: a Bash deny also matches after ``;``, ``&&``, ``|``
``ask``        approval    an operator approves in clearance, never the client's own prompt
``allow``      permit      matched narrowly: a Bash allow never permits a compound command
(no rule)      default     ``deny`` unless ``--default approval``
=============  ==========  ==================================================================

Rule syntax understood (INTEGRATIONS.md 4.4): ``Tool``, ``Tool(*)``, ``Bash(prefix:*)``,
``Bash(glob *)``, ``Bash(exact command)``, path rules ``Read|Edit|Write|...(pattern)`` with
gitignore-style globs (``./`` and bare paths relative to the project root, ``~/`` home, ``//``
absolute; ``Read`` rules cover Read, Glob and Grep, ``Edit`` rules cover every editing tool),
``WebFetch(domain:host)`` and ``WebFetch(domain:*.host)``, ``Task(agent-name)``,
``mcp__server__tool``, and ``mcp__server`` / ``mcp__server__*`` for a whole server. Anything else
is a problem reported with the file, the rule's position and a hint - never dropped silently,
because a dropped ``deny`` would become a permit::

    imported = translate(json.loads(text), source=".claude/settings.json",
                         root=PurePosixPath("/home/dev/project"), home=PurePosixPath("/home/dev"))
    Path("policy.yaml").write_text(imported.to_yaml())

Path rules are matched against the absolute path in the tool input (Claude Code sends absolute
paths); a path with ``.`` or ``..`` segments, or a relative one, is denied outright by a generated
rule, so ``/project/src/../.env`` cannot slip past ``Read(./.env)``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Literal

import yaml

from clearance.errors import ConfigError, Location
from clearance.integrations.errors import PermissionRulesError

Kind = Literal["deny", "ask", "allow"]
KINDS: tuple[Kind, ...] = ("deny", "ask", "allow")
_OUTCOME: dict[Kind, str] = {"deny": "deny", "ask": "approval", "allow": "permit"}


@dataclass(frozen=True, slots=True)
class _Tool:
    tier: str
    params: dict[str, dict[str, Any]]


def _string(*, required: bool = False) -> dict[str, Any]:
    return {"type": "string", "required": True} if required else {"type": "string"}


#: Claude Code's built-in tools (input shapes from INTEGRATIONS.md 4.1). Every one is declared so
#: a call with no matching rule gets the policy default, not ``unknown-tool``.
BUILTIN_TOOLS: dict[str, _Tool] = {
    "Bash": _Tool("write-broad", {"command": _string(required=True)}),
    "Read": _Tool("read-only", {"file_path": _string(required=True)}),
    "Glob": _Tool("read-only", {"pattern": _string(required=True), "path": _string()}),
    "Grep": _Tool("read-only", {"pattern": _string(required=True), "path": _string()}),
    "Write": _Tool("write-limited", {"file_path": _string(required=True)}),
    "Edit": _Tool("write-limited", {"file_path": _string(required=True)}),
    "MultiEdit": _Tool("write-limited", {"file_path": _string(required=True)}),
    "NotebookEdit": _Tool("write-limited", {"notebook_path": _string(required=True)}),
    "WebFetch": _Tool("write-limited", {"url": _string(required=True)}),
    "WebSearch": _Tool("read-only", {"query": _string(required=True)}),
    "Task": _Tool("write-limited", {"subagent_type": _string()}),
    "TodoWrite": _Tool("read-only", {}),
}
MCP_TIER = "write-limited"

#: Which tools a path rule covers (Claude Code checks Read rules for every reading tool and Edit
#: rules for every editing tool).
_PATH_TOOLS: dict[str, tuple[str, ...]] = {
    "Read": ("Read", "Glob", "Grep"),
    "Edit": ("Edit", "Write", "MultiEdit", "NotebookEdit"),
    "Write": ("Write",),
    "MultiEdit": ("MultiEdit",),
    "NotebookEdit": ("NotebookEdit",),
    "Glob": ("Glob",),
    "Grep": ("Grep",),
}
_ALL_PATH_TOOLS = sorted({t for tools in _PATH_TOOLS.values() for t in tools})

_RULE = re.compile(r"(?P<tool>[A-Za-z][A-Za-z0-9_-]*)(?:\((?P<spec>.*)\))?", re.DOTALL)
#: Characters that chain, substitute or redirect in a shell: a permit never matches them.
_SHELL_CONTROL = r"[;&|`$<>()\n\r]"
#: Where a new command can start inside a shell line (a deny matches there too), and an optional
#: directory before the program (``/usr/bin/curl`` is still ``curl``).
_COMMAND_START = r"(?:^|[;&|(`\n\r]|\$\()\s*(?:[^\s;&|]*/)?"
_UNNORMALIZED = r"(?:^|/)\.\.?(?:/|$)"


@dataclass(frozen=True, slots=True)
class ImportedPolicy:
    """The generated policy document and what the reader should know about it."""

    document: dict[str, Any]
    notes: tuple[str, ...] = ()
    source: str = "settings.json"

    def to_yaml(self) -> str:
        """The policy as YAML, headed by a comment saying where it came from."""
        header = [f"# clearance policy imported from Claude Code permissions in {self.source}."]
        header += [f"# note: {note}" for note in self.notes]
        body = yaml.safe_dump(self.document, sort_keys=False, allow_unicode=True, width=100)
        return "\n".join(header) + "\n" + body


@dataclass(slots=True)
class _Builder:
    source: str
    root: PurePosixPath
    home: PurePosixPath
    tools: dict[str, _Tool] = field(default_factory=lambda: dict(BUILTIN_TOOLS))
    rules: list[dict[str, Any]] = field(default_factory=list)
    problems: list[ConfigError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    uses_paths: bool = False

    def problem(self, key: str, message: str, hint: str) -> None:
        self.problems.append(
            ConfigError(message, location=Location(file=self.source, key=key), hint=hint)
        )

    def add(self, kind: Kind, index: int, text: str) -> None:
        key = f"permissions.{kind}[{index}]"
        match = _RULE.fullmatch(text.strip())
        if match is None:
            self.problem(key, f"cannot read the rule `{text}`", "write `Tool` or `Tool(specifier)`")
            return
        tool, spec = match.group("tool"), match.group("spec")
        rule: dict[str, Any] = {"id": f"claude-{kind}-{index + 1}"}
        try:
            targets, when = self._target(tool, spec, kind)
        except _Unsupported as exc:
            self.problem(key, f"unsupported rule `{text}`: {exc.why}", exc.hint)
            return
        if targets:
            rule["tools"] = targets
        if when:
            rule["when"] = when
        rule["outcome"] = _OUTCOME[kind]
        rule["reason"] = f"Claude Code {kind} rule `{text.strip()}`"
        self.rules.append(rule)

    def _target(self, tool: str, spec: str | None, kind: Kind) -> tuple[list[str], str | None]:
        if tool.startswith("mcp__"):
            return self._mcp(tool, spec)
        if tool not in BUILTIN_TOOLS:
            raise _Unsupported(
                f"`{tool}` is not a Claude Code tool this importer knows",
                f"known tools: {', '.join(sorted(BUILTIN_TOOLS))}; MCP tools are `mcp__server__tool`",
            )
        if spec is None or spec.strip() in ("", "*"):
            return ([*_PATH_TOOLS[tool]] if tool in _PATH_TOOLS else [tool]), None
        if tool == "Bash":
            return ["Bash"], _bash_condition(spec, kind)
        if tool in _PATH_TOOLS:
            condition = _path_condition(self._path_regex(spec), kind)
            self.uses_paths = True
            return [*_PATH_TOOLS[tool]], condition
        if tool == "WebFetch":
            return ["WebFetch"], _domain_condition(spec, kind)
        if tool == "Task":
            return ["Task"], f"has(args.subagent_type) && args.subagent_type == {_cel(spec)}"
        raise _Unsupported(
            f"`{tool}` takes no specifier", f"write `{tool}` to match every `{tool}` call"
        )

    def _mcp(self, tool: str, spec: str | None) -> tuple[list[str], str | None]:
        if spec is not None:
            raise _Unsupported("MCP tools take no specifier", "write `mcp__server__tool`")
        parts = tool.split("__")
        if len(parts) == 2 or (len(parts) == 3 and parts[2] == "*"):
            prefix = f"mcp__{parts[1]}__"
            self.notes.append(
                f"`{tool}` covers a whole MCP server: declare its tools under `tools:` "
                "(a tool missing from the inventory is refused as `unknown-tool`)"
            )
            return [], f"request.tool.startsWith({_cel(prefix)})"
        if len(parts) != 3 or not all(parts[1:]) or "*" in tool:
            raise _Unsupported(
                "MCP rules name a server or one tool", "write `mcp__server` or `mcp__server__tool`"
            )
        self.tools.setdefault(tool, _Tool(MCP_TIER, {}))
        return [tool], None

    def _path_regex(self, spec: str) -> str:
        if any(c in spec for c in "[]{}"):
            raise _Unsupported(
                "character classes and braces are not supported in path patterns",
                "write one rule per alternative",
            )
        if spec.startswith("//"):
            base, pattern = PurePosixPath("/"), spec[2:]
        elif spec.startswith("~/"):
            base, pattern = self.home, spec[2:]
        elif spec.startswith("./"):
            base, pattern = self.root, spec[2:]
        else:
            base, pattern = self.root, spec.lstrip("/")
            if "/" not in spec.rstrip("/"):  # gitignore: a bare name matches at any depth
                return "^" + re.escape(str(base).rstrip("/")) + "/(?:.*/)?" + _glob(pattern) + "$"
        return "^" + re.escape(str(base).rstrip("/")) + "/" + _glob(pattern) + "$"

    def document(
        self, *, name: str, task: str, default: str, approvers: Sequence[str]
    ) -> dict[str, Any]:
        rules = list(self.rules)
        if self.uses_paths:
            rules.insert(0, {
                "id": "claude-unnormalized-path",
                "tools": _ALL_PATH_TOOLS,
                "when": f'request.target != "" && (!request.target.startsWith("/") || '
                        f"re_search(request.target, {_cel(_UNNORMALIZED)}))",
                "outcome": "deny",
                "reason": "file paths must be absolute and normalized (no `.` or `..` segments)",
            })  # fmt: skip
        approvals: dict[str, Any] = {"timeout": "15m"}
        if approvers:
            approvals |= {"groups": {"approvers": list(approvers)}, "default_group": "approvers"}
        return {
            "version": "1",
            "name": name,
            "description": f"imported from Claude Code permissions in {self.source}",
            "default": default,
            "tools": {
                tool: {
                    "tier": spec.tier,
                    "additional_params": True,
                    **({"params": spec.params} if spec.params else {}),
                }
                for tool, spec in self.tools.items()
            },
            "tasks": {task: {"tools": list(self.tools)}},
            "environments": {"development": {}, "staging": {}, "production": {}},
            "approvals": approvals,
            "rules": rules,
        }


class _Unsupported(Exception):  # noqa: N818 - internal signal, turned into a ConfigError
    def __init__(self, why: str, hint: str) -> None:
        super().__init__(why)
        self.why = why
        self.hint = hint


def translate(
    settings: Mapping[str, Any],
    *,
    source: str,
    root: PurePosixPath,
    home: PurePosixPath,
    name: str = "claude-permissions",
    task: str = "coding",
    default: Literal["deny", "approval"] = "deny",
    approvers: Sequence[str] = (),
    skip_unsupported: bool = False,
) -> ImportedPolicy:
    """The policy for the ``permissions`` of a Claude Code settings document.

    Raises ``PermissionRulesError`` listing every rule it cannot translate; with
    ``skip_unsupported`` those rules are left out and listed in the notes instead.
    """
    permissions = settings.get("permissions")
    if not isinstance(permissions, Mapping):
        raise ConfigError(
            "the settings have no `permissions` object",
            location=Location(file=source, key="permissions"),
            hint="point the importer at a Claude Code settings.json with allow/ask/deny lists",
        )
    builder = _Builder(source=source, root=root, home=home)
    for kind in KINDS:
        entries = permissions.get(kind, [])
        if not isinstance(entries, list):
            builder.problem(f"permissions.{kind}", f"`{kind}` is not a list", "write a JSON list")
            continue
        for index, entry in enumerate(entries):
            if isinstance(entry, str):
                builder.add(kind, index, entry)
            else:
                builder.problem(f"permissions.{kind}[{index}]", "a rule is not text", "quote it")
    if builder.problems and not skip_unsupported:
        raise PermissionRulesError(builder.problems)
    notes = [*builder.notes, *(f"skipped: {p}" for p in builder.problems)]
    mode = permissions.get("defaultMode")
    if isinstance(mode, str) and mode != "default":
        notes.append(f"`defaultMode: {mode}` has no effect here: the gate decides every call")
    document = builder.document(name=name, task=task, default=default, approvers=approvers)
    return ImportedPolicy(document=document, notes=tuple(notes), source=source)


# conditions -----------------------------------------------------------------------------------
def _cel(text: str) -> str:
    """A CEL string literal (JSON's escapes are CEL's)."""
    return json.dumps(text)


def _glob(pattern: str) -> str:
    """gitignore-style glob -> regex: ``**`` any depth, ``*`` and ``?`` within one segment."""
    out, i = [], 0
    trailing_dir = pattern.endswith("/")
    pattern = pattern.rstrip("/")
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out) + ("(?:/.*)?" if trailing_dir else "")


def _bash_regex(spec: str, *, loose: bool) -> str:
    """The command pattern of a Bash specifier, without anchors.

    ``loose`` (for deny rules) lets any run of whitespace stand for a space, so ``git  push``
    cannot dodge ``git push *``; permits keep the exact spelling.
    """
    space = r"\s+" if loose else " "
    if spec.endswith(":*"):  # legacy prefix form: the prefix, then nothing or a word boundary
        prefix = spec[:-2]
        return _spaced(prefix, space) + r"(?:\s.*)?"
    if spec.endswith(" *"):  # `cmd *` also matches the bare `cmd`
        return _spaced(spec[:-2], space) + r"(?:\s.*)?"
    return _spaced(spec, space)


def _spaced(text: str, space: str) -> str:
    return space.join(".*".join(re.escape(p) for p in word.split("*")) for word in text.split())


def _bash_condition(spec: str, kind: Kind) -> str:
    if kind == "deny":
        pattern = _COMMAND_START + _bash_regex(spec, loose=True) + r"(?:$|[\s;&|)`])"
        return f"re_search(args.command, {_cel(pattern)})"
    pattern = "^" + _bash_regex(spec, loose=False) + "$"
    return (
        f"re_search(args.command, {_cel(pattern)}) && "
        f"!re_search(args.command, {_cel(_SHELL_CONTROL)})"
    )


def _path_condition(pattern: str, kind: Kind) -> str:
    if kind == "deny":
        return f"re_search(request.target, {_cel(pattern)})"
    return (
        f"re_search(request.target, {_cel(pattern)}) && "
        f"!re_search(request.target, {_cel(_UNNORMALIZED)})"
    )


def _domain_condition(spec: str, kind: Kind) -> str:
    if not spec.startswith("domain:") or not spec[len("domain:") :].strip():
        raise _Unsupported("WebFetch rules name a domain", "write `WebFetch(domain:example.com)`")
    domain = spec[len("domain:") :].strip().lower()
    host = "url_host(args.url)"
    if domain.startswith("*."):
        return f"{host}.endsWith({_cel(domain[1:])})"
    if "*" in domain:
        raise _Unsupported(
            "a domain wildcard must be a leading `*.`", "write `domain:*.example.com`"
        )
    if kind == "deny":  # deny the domain and everything under it
        return f"({host} == {_cel(domain)} || {host}.endsWith({_cel('.' + domain)}))"
    return f"{host} == {_cel(domain)}"
