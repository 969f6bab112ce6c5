"""The ``Query`` base class and the query-string encoding every query type shares.

Each query names its server filter (``name``) and lists its fields; the pairs
``filter[{name}][condition][{field}]=text`` are built once, at construction.
"""

# No ``from __future__ import annotations``: the facade gives these classes its
# module name, so string annotations could no longer be resolved by get_type_hints.
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = ["NoBool", "Pairs", "Query", "bool_text", "encode_queries", "json_text", "query_dataclass", "set_fields"]

Pairs = list[tuple[str, str]]


class NoBool:
    """Mixin: refuse truth testing, which would silently drop a condition."""

    def __bool__(self) -> bool:
        raise TypeError(
            "Queries have no truth value. Do not combine them with `and`/`or`; "
            "pass several queries (or chain .search(...) calls) to combine them with AND."
        )


class Query(NoBool):
    """Base class of all queries.

    Subclasses are frozen dataclasses with a class attribute ``name`` (the
    server's filter name) and a ``_fields`` method giving ``(field, text)``
    for every field, in a fixed order. The encoded pairs are computed once,
    at construction, so an unencodable query fails immediately. Two queries
    are equal when they have the same type and the same encoding.
    """

    name: ClassVar[str]
    _pairs: tuple[tuple[str, str], ...]

    def _fields(self) -> list[tuple[str, str]]:
        raise NotImplementedError

    def _encode_now(self) -> None:
        pairs = tuple(
            (f"filter[{self.name}][condition][{field}]", text) for field, text in self._fields()
        )
        object.__setattr__(self, "_pairs", pairs)

    def encode(self) -> Pairs:
        """Return the query-string ``(parameter, value)`` pairs for this query."""
        return list(self._pairs)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._pairs == other._pairs  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self._pairs))


def query_dataclass(cls: type) -> type:
    """Class decorator: a frozen dataclass that keeps ``Query``'s eq and hash."""
    return dataclass(frozen=True, eq=False)(cls)


def set_fields(obj: Any, **values: Any) -> None:
    """Assign checked values to a frozen dataclass (from its ``__post_init__``)."""
    for attr, value in values.items():
        object.__setattr__(obj, attr, value)


def json_text(value: Any) -> str:
    """Compact JSON text of an already-normalised value."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def bool_text(value: bool) -> str:
    """A boolean field as the server reads it."""
    return "true" if value else "false"


def encode_queries(queries: Iterable[Query]) -> Pairs:
    """Concatenate the query-string pairs of ``queries`` (combined with AND by the server).

    Args:
        queries: ``Query`` objects, in any order; repeats of one type are fine.
            A single ``Query`` is accepted too.

    Raises:
        TypeError: an item is not a ``tiled_core.queries.Query`` (for example a
        ``tiled.queries`` object, or a bare bool from a misused comparison).
    """
    if isinstance(queries, Query):
        queries = [queries]
    pairs: Pairs = []
    for query in queries:
        if not isinstance(query, Query):
            raise TypeError(
                f"expected a tiled_core.queries.Query, got {type(query).__module__}."
                f"{type(query).__qualname__}"
            )
        pairs.extend(query._pairs)
    return pairs
