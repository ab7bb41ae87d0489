"""Problems found while loading a policy, each with a file, line, key and hint.

Loading never stops at the first problem: every stage appends to one ``Problems`` list, and the
caller raises a single ``PolicySchemaError`` holding all of them sorted by location, so an author
fixes a file in one pass instead of one error per run.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from clearance.errors import Location, PolicyError, PolicySchemaError

Path = tuple[str | int, ...]


def key_text(path: Path) -> str:
    """Render a key path the way authors write it: ``rules[3].when``, ``tools.x.params.y``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A hint naming the closest valid spelling, or ``None`` when nothing is close."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


class Problems:
    """An ordered collection of load problems for one source."""

    def __init__(self, source_name: str, lines: Mapping[str, int]) -> None:
        self.source_name = source_name
        self.lines = lines
        self.items: list[PolicyError] = []

    def locate(self, path: Path) -> Location:
        """The location of ``path``, falling back to its nearest ancestor that has a line."""
        for end in range(len(path), 0, -1):
            line = self.lines.get(key_text(path[:end]))
            if line is not None:
                return Location(self.source_name, line, key_text(path) or None)
        return Location(self.source_name, None, key_text(path) or None)

    def add(
        self,
        path: Path,
        message: str,
        *,
        hint: str | None = None,
        error: type[PolicyError] = PolicyError,
    ) -> None:
        """Record one problem at ``path``."""
        self.items.append(error(message, location=self.locate(path), hint=hint))

    def add_validation_error(self, exc: ValidationError, model: type[BaseModel]) -> None:
        """Translate every pydantic error into a problem in the project's message style."""
        for err in exc.errors(include_url=False):
            path: Path = tuple(err["loc"])
            message, hint = _message(err, path, model)
            self.add(path, message, hint=hint)

    def raise_if_any(self) -> None:
        """Raise one ``PolicySchemaError`` with every problem, or return if there are none."""
        if self.items:
            raise PolicySchemaError(self.items)


def _message(err: Any, path: Path, model: type[BaseModel]) -> tuple[str, str | None]:
    kind = err["type"]
    key = path[-1] if path else ""
    if kind == "extra_forbidden":
        hint = did_you_mean(str(key), _field_names(model, path[:-1]))
        return f"unknown key `{key}`", hint
    if kind == "missing":
        return f"missing required key `{key}`", None
    if kind == "value_error":
        return str(err["ctx"]["error"]), None
    text = str(err["msg"])
    text = text[0].lower() + text[1:] if text else text
    return text.rstrip("."), None


def _field_names(model: type[BaseModel], path: Sequence[str | int]) -> list[str]:
    """The keys a model accepts at ``path``, walking through dicts, lists and optionals."""
    annotation: Any = model
    for part in path:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            if field is None:
                field = next((f for f in annotation.model_fields.values() if f.alias == part), None)
            if field is None:
                return []
            annotation = field.annotation
        else:
            args = typing.get_args(annotation)
            if not args:
                return []
            annotation = args[-1]
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [f.alias or name for name, f in annotation.model_fields.items()]
    return []


def _unwrap(annotation: Any) -> Any:
    """Strip ``X | None`` and ``Annotated[...]`` down to the model or container type."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation
