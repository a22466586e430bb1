"""pydantic validation errors of a config schema as one-line :class:`~paraspeechclap.errors.ConfigError`.

Each message names the dotted key, the bad value and what is allowed, read from the schema
itself (the ``Literal`` choices, the ``Field`` bounds, the field names of a section), so the
schema stays the only place where they are written:

    train.batch_size: must be positive (> 0), got 0
    optim.schedule: 'exponential' is not one of constant, cosine, linear
    unknown config key 'train.batch_sise' (did you mean 'train.batch_size'?)

Validators report a broken rule by raising :class:`Rule`.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Union

from pydantic import ValidationError

from ..errors import ConfigError

__all__ = ["Rule", "config_error", "short_repr"]

_EXPECTED = {
    "int_type": "int", "int_parsing": "int", "int_from_float": "int",
    "float_type": "float", "float_parsing": "float", "bool_type": "bool", "bool_parsing": "bool",
    "string_type": "str", "list_type": "a list", "dict_type": "a mapping", "dataclass_type": "a mapping",
}  # fmt: skip
_UNKNOWN = ("unexpected_keyword_argument", "extra_forbidden")
_BOUNDS = {"greater_than": "gt", "greater_than_equal": "ge", "less_than": "lt", "less_than_equal": "le"}
_SIGNS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))


class Rule(ValueError):
    """A broken rule, raised by a validator (pydantic keeps it in the error's context).

    Args:
        message: what is wrong and what is allowed (the key is prepended).
        key: dotted key relative to the validated section; None = the location pydantic reports
            (the field of a field validator, the section of a model validator).
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.message, self.key = message, key


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr`` cut to ``limit`` characters (a whole section as the bad value would flood the line)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _dotted(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc) or "config"


def _unwrap(hint: Any) -> tuple[Any, list[Any], bool]:
    """``(bare type, constraint metadata, accepts None)`` of a type hint."""
    metadata: list[Any] = []
    nullable = False
    while True:
        origin = typing.get_origin(hint)
        if origin is Annotated:
            hint, *extra = typing.get_args(hint)
            for m in extra:  # a Field(...) carries its constraints in .metadata
                metadata.extend(getattr(m, "metadata", None) or [m])
        elif origin in (Union, types.UnionType) and type(None) in typing.get_args(hint):
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            nullable = True
            if len(args) != 1:
                return hint, metadata, nullable
            hint = args[0]
        else:
            return hint, metadata, nullable


def _hint_at(root: type, loc: Sequence[Any]) -> Any:
    """The schema's type hint at an error location (None when the path leaves the schema)."""
    hint: Any = root
    for part in loc:
        bare = _unwrap(hint)[0]
        if dataclasses.is_dataclass(bare):
            hint = typing.get_type_hints(bare, include_extras=True).get(str(part))
        elif typing.get_origin(bare) is list and isinstance(part, int):
            hint = typing.get_args(bare)[0]
        elif typing.get_origin(bare) is dict:
            hint = typing.get_args(bare)[1]
        else:
            return None
        if hint is None:
            return None
    return hint


def _constraints(root: type, loc: Sequence[Any], *names: str) -> dict[str, Any]:
    """The named constraints (``gt``, ``min_length``, ...) declared on the field at ``loc``."""
    metadata = _unwrap(_hint_at(root, loc))[1]
    return {k: getattr(m, k) for m in metadata for k in names if getattr(m, k, None) is not None}


def _range_text(bounds: dict[str, Any], nullable: bool) -> str:
    """What a ranged field allows, e.g. ``positive (> 0)``, ``in [1000, 16000)``, ``>= 1 or null``."""
    low = f"({bounds['gt']}" if "gt" in bounds else f"[{bounds['ge']}" if "ge" in bounds else None
    high = f"{bounds['lt']})" if "lt" in bounds else f"{bounds['le']}]" if "le" in bounds else None
    if low and high:
        text = f"in {low}, {high}"
    elif bounds.get("gt") == 0:
        text = "positive (> 0)"
    else:
        text = " ".join(f"{sign} {bounds[k]}" for k, sign in _SIGNS if k in bounds)
    return f"{text} or null" if nullable else text


def _length_text(bounds: dict[str, Any]) -> str:
    """What a list's length may be, e.g. ``2 values``, ``at least 1 values``."""
    low, high = bounds.get("min_length"), bounds.get("max_length")
    if low is not None and low == high:
        return f"{low} values"
    parts = [f"at least {low}" if low is not None else "", f"at most {high}" if high is not None else ""]
    return " and ".join(p for p in parts if p) + " values"


def _choices(root: type, loc: Sequence[Any], ctx: dict[str, Any]) -> str:
    bare = _unwrap(_hint_at(root, loc))[0]
    if typing.get_origin(bare) is Literal:
        return ", ".join(str(c) for c in typing.get_args(bare))
    return str(ctx.get("expected", "?"))


def _unknown_key(root: type, loc: Sequence[Any]) -> str:
    section = _unwrap(_hint_at(root, loc[:-1]))[0]
    names = [f.name for f in dataclasses.fields(section)] if dataclasses.is_dataclass(section) else []
    close = difflib.get_close_matches(str(loc[-1]), names, n=1)
    if close:
        return f"unknown config key {_dotted(loc)!r} (did you mean {_dotted([*loc[:-1], close[0]])!r}?)"
    return f"unknown config key {_dotted(loc)!r}; {_dotted(loc[:-1])} has: {', '.join(names)}"


def _describe(root: type, error: Any) -> str:
    """One line for one pydantic error: the dotted key, the bad value, what is allowed."""
    loc, kind, ctx = error["loc"], error["type"], error.get("ctx") or {}
    key, value = _dotted(loc), short_repr(error.get("input"))
    rule = ctx.get("error")
    if isinstance(rule, Rule):
        return f"{_dotted([*loc, rule.key] if rule.key else loc)}: {rule.message}"
    if kind == "missing":
        return f"missing required config key {key!r}"
    if kind in _UNKNOWN:
        return _unknown_key(root, loc)
    if kind == "literal_error":
        return f"{key}: {value} is not one of {_choices(root, loc, ctx)}"
    nullable = _unwrap(_hint_at(root, loc))[2]
    if kind in _BOUNDS:
        bounds = _constraints(root, loc, "gt", "ge", "lt", "le") or {_BOUNDS[kind]: ctx.get(_BOUNDS[kind])}
        return f"{key}: must be {_range_text(bounds, nullable)}, got {value}"
    if kind in ("too_short", "too_long"):
        lengths = _constraints(root, loc, "min_length", "max_length") or ctx
        return f"{key}: expected {_length_text(lengths)}, got {value}"
    if kind in _EXPECTED:
        expected = _EXPECTED[kind] + (" or null" if nullable else "")
        return f"{key}: expected {expected}, got {type(error.get('input')).__name__} {value}"
    return f"{key}: {error['msg']} (got {value})"


def config_error(exc: ValidationError, root: type) -> ConfigError:
    """The first error of ``exc`` (validating schema class ``root``) as a one-line ConfigError.

    Unknown keys come first: a misspelt required key is also reported as missing, and the
    suggestion of the right spelling is the more useful message.
    """
    errors = exc.errors()
    first = next((e for e in errors if e["type"] in _UNKNOWN), errors[0])
    return ConfigError(_describe(root, first))
