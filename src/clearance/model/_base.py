"""The one model configuration: frozen, strict about unknown fields, cheap to build from trusted data."""

from __future__ import annotations

import copy
from collections.abc import Callable
from enum import Enum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticUndefined

_IMMUTABLE = (type(None), bool, int, float, str, bytes, Enum, frozenset)

# How to fill one field that the caller left out: (name, shared default, factory). A required
# field has neither and stays absent, exactly as in pydantic's own ``model_construct``.
_Fill = tuple[str, Any, Callable[[], Any] | None]
_PLANS: dict[type[BaseModel], tuple[tuple[_Fill, ...], frozenset[str]] | None] = {}


def _immutable(value: Any) -> bool:
    if isinstance(value, tuple):
        return all(_immutable(item) for item in value)
    return isinstance(value, _IMMUTABLE)


def _copier(default: Any) -> Callable[[], Any]:
    """A factory of fresh copies of a mutable default (pydantic never shares them either)."""
    return lambda: copy.deepcopy(default)


def _plan(cls: type[BaseModel]) -> tuple[tuple[_Fill, ...], frozenset[str]] | None:
    """The fill plan of a model, or None when it needs pydantic's general path (aliases, hooks)."""
    if cls.__pydantic_post_init__ or cls.__pydantic_root_model__:
        return None
    fills: list[_Fill] = []
    for name, field in cls.__pydantic_fields__.items():
        if field.alias is not None or field.validation_alias is not None:
            return None
        if field.default_factory is not None:
            if field.default_factory_takes_validated_data:
                return None
            fills.append((name, PydanticUndefined, field.default_factory))  # type: ignore[arg-type]
        elif field.default is PydanticUndefined:
            fills.append((name, PydanticUndefined, None))
        elif _immutable(field.default):
            fills.append((name, field.default, None))
        else:
            fills.append((name, PydanticUndefined, _copier(field.default)))
    return tuple(fills), frozenset(cls.__pydantic_fields__)


class Value(BaseModel):
    """Base of every model value: immutable, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def model_construct(  # type: ignore[override]  # the pydantic plugin types it per model
        cls, _fields_set: set[str] | None = None, **values: Any
    ) -> Self:
        """Build from values the gate already validated, without validating them again.

        Same result as pydantic's ``model_construct`` (unknown names ignored, defaults filled,
        ``model_fields_set`` naming what was given), without its per-call introspection of
        default factories, which cost more than the rest of a decision's policy evaluation on the
        hot path. Models with aliases or post-init hooks take pydantic's own path.
        """
        try:
            plan = _PLANS[cls]
        except KeyError:
            plan = _PLANS[cls] = _plan(cls)
        if plan is None:
            return super().model_construct(_fields_set, **values)
        fills, names = plan
        data: dict[str, Any] = {}
        for name, default, factory in fills:
            if name in values:
                data[name] = values[name]
            elif factory is not None:
                data[name] = factory()
            elif default is not PydanticUndefined:
                data[name] = default
        model = cls.__new__(cls)
        object.__setattr__(model, "__dict__", data)
        object.__setattr__(
            model,
            "__pydantic_fields_set__",
            values.keys() & names if _fields_set is None else _fields_set,
        )
        object.__setattr__(model, "__pydantic_extra__", None)
        object.__setattr__(model, "__pydantic_private__", None)
        return model
