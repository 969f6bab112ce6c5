"""Argument checks of the query types, and conversion of values to plain JSON-ready objects."""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "QueryValueError",
    "check_bool",
    "check_enum",
    "check_sequence",
    "check_str",
    "check_str_list",
    "is_numpy",
    "to_json_value",
]


class QueryValueError(ValueError):
    """A query argument has an invalid value."""


def is_numpy(value: Any) -> bool:
    return type(value).__module__ == "numpy" and hasattr(value, "tolist")


def to_json_value(value: Any, what: str) -> Any:
    """Return ``value`` as plain JSON-ready Python objects.

    numpy scalars and arrays become Python scalars and lists, tuples become
    lists, str subclasses become ``str``. Raises ``TypeError`` for anything
    JSON cannot represent (and for non-string mapping keys) and
    ``QueryValueError`` for NaN or infinite floats.
    """
    if value is None or type(value) in (bool, int, str):
        return value
    if isinstance(value, enum.Enum):
        return to_json_value(value.value, what)
    if is_numpy(value):
        return to_json_value(value.tolist(), what)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QueryValueError(f"{what} must be a finite number, not {value!r}")
        return float(value)
    if isinstance(value, Mapping):
        result = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{what}: mapping keys must be str, not {type(key).__name__}")
            result[str.__str__(key)] = to_json_value(item, what)
        return result
    if isinstance(value, (list, tuple)):
        return [to_json_value(item, what) for item in value]
    raise TypeError(f"{what} must be JSON-serialisable, not {type(value).__name__}")


def check_str(value: Any, what: str, *, allow_empty: bool = False) -> str:
    """Return ``value`` as a plain ``str``; ``TypeError``/``QueryValueError`` otherwise."""
    if is_numpy(value):
        value = value.tolist()
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value and not allow_empty:
        raise QueryValueError(f"{what} must not be empty")
    return str.__str__(value)


def check_bool(value: Any, what: str) -> bool:
    if is_numpy(value):
        value = value.tolist()
    if not isinstance(value, bool):
        raise TypeError(f"{what} must be a bool, not {type(value).__name__}")
    return value


def check_sequence(value: Any, what: str) -> list[Any]:
    """Return a list of the items of ``value``, which must be a non-string iterable."""
    if is_numpy(value):
        value = value.tolist()
    if isinstance(value, (str, bytes, bytearray, Mapping)) or not isinstance(value, Iterable):
        raise TypeError(f"{what} must be a list (or other iterable), not {type(value).__name__}")
    return list(value)


def check_str_list(value: Any, what: str) -> list[str]:
    return [check_str(item, f"each of {what}") for item in check_sequence(value, what)]


def check_enum(enum_type: type[enum.Enum], value: Any, what: str) -> Any:
    try:
        return enum_type(value)
    except ValueError:
        allowed = ", ".join(repr(member.value) for member in enum_type)
        raise QueryValueError(f"{what} must be one of {allowed}, not {value!r}") from None
