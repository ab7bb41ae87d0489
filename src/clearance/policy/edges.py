"""Constraint edges: every bound of a tool's parameter schema, named, and which ones a call probes.

An *edge* is one place where the schema's answer flips: ``transfer_funds.amount:above-max`` is a
value just past ``max``, ``transfer_funds.amount:at-max`` the bound itself (still accepted),
``send_email.recipient:pattern`` a text the regular expression refuses. The red team probes every
edge (``clearance.policy.redteam``) and ``clearance policy test --coverage`` reports the edges no
test case probed; both name them the same way, from the compiled schema, so a bound added to a
policy is probed and reported without editing either.

A call *probes* the edge its arguments fail on first, in the order ``ArgsSchema.check`` applies
(required parameters, then each declared parameter: type, allowed values, range, sizes, pattern;
then undeclared parameters): that is the bound that decided the call. A call that fails nothing
probes the ``at-*`` edges whose bound it sits on.

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clearance.formats.canonical import canonical_bytes
from clearance.policy.constraints import json_problem
from clearance.policy.document import Param, Tool

#: Edge kinds in the order the schema checks them, with the sentence a report prints.
KINDS: dict[str, str] = {
    "missing": "required parameter left out",
    "type": "value of the wrong JSON type",
    "enum": "value outside `enum`",
    "below-min": "value just below `min`",
    "at-min": "value exactly at `min` (accepted)",
    "above-max": "value just above `max`",
    "at-max": "value exactly at `max` (accepted)",
    "min-length": "text shorter than `min_length`",
    "max-length": "text longer than `max_length`",
    "max-items": "list longer than `max_items`",
    "max-bytes": "value larger than `max_bytes`",
    "pattern": "text the `pattern` refuses",
    "extra-param": "parameter the tool does not declare",
}

_TYPE_OK = {
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


@dataclass(frozen=True, slots=True)
class Edge:
    """One edge of one tool: ``id`` is ``tool.param:kind`` (``tool:extra-param`` for the tool)."""

    tool: str
    param: str | None
    kind: str

    @property
    def id(self) -> str:
        """The stable name reports use."""
        where = f"{self.tool}.{self.param}" if self.param else self.tool
        return f"{where}:{self.kind}"

    def describe(self, spec: Tool) -> str:
        """``tool.param:kind: sentence (bound)`` for a report."""
        bound = self.bound(spec)
        return f"{self.id}: {KINDS[self.kind]}{f' ({bound})' if bound else ''}"

    def short(self, spec: Tool) -> str:
        """``kind bound`` (``below-min 0.01``, ``pattern ACC-[0-9]{6}``) for a grouped list."""
        bound = self.bound(spec)
        return f"{self.kind} {bound}" if bound else self.kind

    def bound(self, spec: Tool) -> str:
        """The bound this edge sits on, as text (empty for edges without one)."""
        param = spec.params.get(self.param) if self.param else None
        return _bound_text(self.kind, param) if param is not None else ""


def _bound_text(kind: str, param: Param) -> str:
    values = {
        "enum": param.enum,
        "below-min": param.min,
        "at-min": param.min,
        "above-max": param.max,
        "at-max": param.max,
        "min-length": param.min_length,
        "max-length": param.max_length,
        "max-items": param.max_items,
        "max-bytes": param.max_bytes,
        "pattern": param.pattern,
        "type": f"not {param.type}",
    }
    value = values.get(kind)
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def param_edges(tool: str, name: str, param: Param) -> list[Edge]:
    """The edges of one parameter, in the order the schema checks them."""
    kinds: list[str] = []
    if param.required:
        kinds.append("missing")
    kinds.append("type")
    if param.enum is not None:
        kinds.append("enum")
    if param.min is not None:
        kinds += ["below-min", "at-min"]
    if param.max is not None:
        kinds += ["above-max", "at-max"]
    for key, kind in (
        ("min_length", "min-length"),
        ("max_length", "max-length"),
        ("max_items", "max-items"),
        ("max_bytes", "max-bytes"),
        ("pattern", "pattern"),
    ):
        if getattr(param, key) is not None:
            kinds.append(kind)
    return [Edge(tool, name, kind) for kind in kinds]


def tool_edges(tool: str, spec: Tool) -> list[Edge]:
    """Every edge of one tool: each parameter's, then undeclared parameters (when refused)."""
    edges = [e for name, param in spec.params.items() for e in param_edges(tool, name, param)]
    if not spec.additional_params:
        edges.append(Edge(tool, None, "extra-param"))
    return edges


def violations(param: Param, value: Any) -> list[str]:
    """Edge kinds ``value`` breaks for ``param``, in check order (empty when it fits).

    A value that is not plain JSON (a non-finite number, an integer beyond +/-(2**53 - 1)) counts
    as the wrong type, as the schema refuses it before any bound.
    """
    if not _TYPE_OK[param.type](value):
        return ["type"]
    if not isinstance(value, str | bool) and json_problem(value) is not None:
        return ["type"]
    out: list[str] = []
    if param.enum is not None and not any(_same(value, allowed) for allowed in param.enum):
        out.append("enum")
    if param.type in ("integer", "number"):
        if param.min is not None and value < param.min:
            out.append("below-min")
        if param.max is not None and value > param.max:
            out.append("above-max")
    if isinstance(value, str):
        if param.min_length is not None and len(value) < param.min_length:
            out.append("min-length")
        if param.max_length is not None and len(value) > param.max_length:
            out.append("max-length")
    if isinstance(value, list) and param.max_items is not None and len(value) > param.max_items:
        out.append("max-items")
    if param.max_bytes is not None:
        size = _size(value)
        if size is None or size > param.max_bytes:
            out.append("max-bytes")
    if (
        isinstance(value, str)
        and param.pattern is not None
        and re.fullmatch(param.pattern, value) is None
    ):
        out.append("pattern")
    return out


def _same(value: object, allowed: object) -> bool:
    if isinstance(value, bool) or isinstance(allowed, bool):
        return type(value) is type(allowed) and value == allowed
    if isinstance(value, int | float) and isinstance(allowed, int | float):
        return value == allowed
    return type(value) is type(allowed) and value == allowed


def _size(value: object) -> int | None:
    try:
        if isinstance(value, str):
            return len(value.encode("utf-8"))
        return len(canonical_bytes(value))
    except (UnicodeEncodeError, ValueError, TypeError):
        return None


def probed(tool: str, spec: Tool, args: Mapping[str, Any]) -> list[Edge]:
    """The edges one call's arguments probe (see the module docstring)."""
    for name, param in spec.params.items():
        if param.required and name not in args:
            return [Edge(tool, name, "missing")]
    for name, param in spec.params.items():
        if name in args:
            broken = violations(param, args[name])
            if broken:
                return [Edge(tool, name, broken[0])]
    if not spec.additional_params and any(name not in spec.params for name in args):
        return [Edge(tool, None, "extra-param")]
    at: list[Edge] = []
    for name, param in spec.params.items():
        value = args.get(name)
        if param.type not in ("integer", "number") or not _TYPE_OK[param.type](value):
            continue
        if param.min is not None and value == param.min:
            at.append(Edge(tool, name, "at-min"))
        if param.max is not None and value == param.max:
            at.append(Edge(tool, name, "at-max"))
    return at
