"""Arbitrary text, YAML trees and mutated real policies load to a Bundle or raise PolicyError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from clearance.errors import PolicyError
from clearance.policy import Bundle, load_policy

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "financeapp" / "policy.yaml"
LINES = EXAMPLE.read_text().splitlines()


def _loads_or_policy_error(text: str) -> None:
    try:
        bundle = load_policy(text, source_name="fuzz.yaml")
    except PolicyError as exc:
        message = str(exc)
    else:
        assert isinstance(bundle, Bundle)
        assert Bundle.from_bytes(bundle.to_bytes()).digest == bundle.digest
        return
    assert message


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text(text: str) -> None:
    _loads_or_policy_error(text)


keys = st.sampled_from(
    [
        "version",
        "name",
        "tools",
        "tasks",
        "environments",
        "rules",
        "data",
        "tier",
        "params",
        "type",
        "when",
        "outcome",
        "id",
        "default",
        "x",
    ]
)
trees: Any = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, trees, max_size=6))
def test_arbitrary_yaml_trees(tree: dict[str, Any]) -> None:
    _loads_or_policy_error(yaml.safe_dump(tree))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_example_policy(data: st.DataObject) -> None:
    lines = list(LINES)
    for _ in range(data.draw(st.integers(1, 3))):
        index = data.draw(st.integers(0, len(lines) - 1))
        action = data.draw(st.sampled_from(["drop", "dup", "cut", "indent"]))
        if action == "drop":
            del lines[index]
        elif action == "dup":
            lines.insert(index, lines[index])
        elif action == "cut":
            lines[index] = lines[index][: data.draw(st.integers(0, len(lines[index])))]
        else:
            lines[index] = "  " + lines[index]
    _loads_or_policy_error("\n".join(lines))
