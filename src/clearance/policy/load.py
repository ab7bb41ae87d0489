"""YAML policy text to a plain JSON tree with the line of every key, then to a ``Bundle``.

The YAML reader is deliberately narrower than YAML: one document, string keys only, no duplicate
keys (PyYAML would silently keep the last one, so two ``outcome:`` keys would hide one), no anchors
or aliases (they make the text mean more than it shows and allow exponential expansion), no tags,
and only JSON values (a bare ``2024-01-01`` is a date in YAML; here it must be quoted). What comes
out is exactly what the bundle's canonical bytes hold.

::

    >>> from pathlib import Path
    >>> bundle = load_policy(Path("examples/financeapp/policy.yaml"))  # doctest: +SKIP
    >>> bundle.digest  # doctest: +SKIP
    'sha256:...'
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from clearance.errors import Location, PolicyError, PolicySyntaxError
from clearance.policy.bundle import Bundle, bundle_from_tree
from clearance.policy.problems import Problems, key_text

#: Policies larger than this are refused before parsing; real policies are a few kilobytes.
MAX_POLICY_BYTES = 4 * 1024 * 1024
_MAX_SAFE_INT = 2**53 - 1
_JSON_SCALARS = (str, int, float, bool, type(None))


def load_policy(path_or_text: Path | str, *, source_name: str | None = None) -> Bundle:
    """Load, validate and compile a policy; raise ``PolicyError`` naming every problem.

    A ``Path`` is read as a file (its base name becomes the source name, so the digest does not
    depend on the directory it was loaded from); a ``str`` is the policy text itself.
    """
    if isinstance(path_or_text, Path):
        try:
            text = path_or_text.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(
                f"cannot read policy file `{path_or_text.name}`: {exc.__class__.__name__}",
                location=Location(str(path_or_text)),
            ) from exc
        name = source_name or path_or_text.name
    else:
        text = path_or_text
        name = source_name or "<policy>"
    tree, lines = parse_yaml(text, source_name=name)
    return bundle_from_tree(tree, lines=lines, source_name=name)


def parse_yaml(text: str, *, source_name: str) -> tuple[dict[str, Any], dict[str, int]]:
    """Parse policy text into a JSON tree and a map from key path (``rules[2].when``) to line."""
    if len(text.encode("utf-8", errors="replace")) > MAX_POLICY_BYTES:
        raise PolicySyntaxError(
            f"the policy is larger than {MAX_POLICY_BYTES} bytes",
            location=Location(source_name),
        )
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = (exc.problem or "invalid YAML").rstrip(".")
        raise PolicySyntaxError(
            f"invalid YAML: {problem}",
            location=Location(source_name, mark.line + 1 if mark else None),
        ) from exc
    except yaml.YAMLError as exc:
        raise PolicySyntaxError(f"invalid YAML: {exc}", location=Location(source_name)) from exc
    except RecursionError as exc:
        raise PolicySyntaxError(
            "the policy is nested too deeply to read",
            location=Location(source_name),
            hint="a policy needs only a few levels of nesting; look for runaway `[` or `{`",
        ) from exc
    if node is None:
        raise PolicySyntaxError(
            "the policy is empty",
            location=Location(source_name),
            hint="a policy needs at least `version`, `name`, `tools`, `tasks` and `environments`",
        )
    reader = _TreeReader(source_name)
    tree = reader.read(node, ())
    if not reader.problems.items and not isinstance(tree, dict):
        reader.problems.add(
            (),
            "the policy must be a mapping of keys such as `version`, `tools` and `rules`",
            hint="to load a file, pass a `pathlib.Path`, not its name as text",
        )
    reader.problems.raise_if_any()
    assert isinstance(tree, dict)  # INVARIANT: checked just above
    return tree, reader.lines


class _TreeReader:
    """Turns a composed YAML node graph into plain values, recording lines and problems."""

    def __init__(self, source_name: str) -> None:
        self.lines: dict[str, int] = {}
        self.problems = Problems(source_name, self.lines)
        self._constructor = yaml.SafeLoader("")
        self._seen: set[int] = set()

    def read(self, node: yaml.Node, path: tuple[str | int, ...]) -> Any:
        if id(node) in self._seen:
            self.problems.add(
                path,
                "anchors and aliases are not supported",
                hint="write the value out where it is used",
            )
            return None
        self._seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                self.lines[key_text((*path, index))] = item.start_mark.line + 1
                items.append(self.read(item, (*path, index)))
            return items
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: tuple[str | int, ...]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            key = self._scalar(key_node, path) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str) or key_node.tag == "tag:yaml.org,2002:merge":
                self.problems.items.append(
                    PolicyError(
                        f"key `{getattr(key_node, 'value', '?')}` is not a plain text key",
                        location=Location(self.problems.source_name, line, key_text(path) or None),
                        hint="quote keys such as `on`, `yes` or `1`; merge keys (`<<`) are not "
                        "supported",
                    )
                )
                continue
            child = (*path, key)
            if key in result:
                self.problems.items.append(
                    PolicyError(
                        f"duplicate key `{key}`",
                        location=Location(self.problems.source_name, line, key_text(child)),
                        hint=f"`{key}` is already set on line {self.lines[key_text(child)]}",
                    )
                )
                continue
            self.lines[key_text(child)] = line
            result[key] = self.read(value_node, child)
        return result

    def _scalar(self, node: yaml.Node, path: tuple[str | int, ...]) -> Any:
        try:
            value = self._constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError) as exc:  # ValueError: an integer of 4,300+ digits
            problem = getattr(exc, "problem", None) or str(exc)
            self.problems.add(path, f"unsupported YAML value: {problem}".rstrip("."))
            return None
        if not isinstance(value, _JSON_SCALARS):
            self.problems.add(
                path,
                f"a {type(value).__name__} value is not allowed here",
                hint="quote it to make it text",
            )
            return None
        if isinstance(value, float) and not math.isfinite(value):
            self.problems.add(path, "numbers must be finite (no `.nan` or `.inf`)")
            return None
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _MAX_SAFE_INT:
            self.problems.add(path, "integers must lie within +/-(2**53 - 1)")
            return None
        return value
