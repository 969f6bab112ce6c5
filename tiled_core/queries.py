"""Search queries for Tiled containers, and their query-string encoding.

Each query is a small immutable value. Its arguments are checked when it is
built, so a bad query fails with ``ValueError`` or ``TypeError`` before any
request is sent. ``query.encode()`` gives the ``(name, value)`` pairs to put in
the query string of ``GET /api/v1/search/{path}``::

    >>> Eq("color", "red").encode()
    [('filter[eq][condition][key]', 'color'), ('filter[eq][condition][value]', '"red"')]

Every query emits every one of its fields, always in the same order, because
the server pairs repeated parameters of one query type by position. Several
queries are combined with AND; ``encode_queries`` concatenates their pairs.

Queries cannot be used as booleans: ``Key("a") == 1 and Key("b") == 2`` raises
``TypeError`` instead of silently dropping a condition. Chain ``search`` calls
(or pass several queries) to combine them.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from .structures import StructureFamily  # one definition of the families, re-exported here

__all__ = [
    "AccessTagsFilter",
    "Comparison",
    "Contains",
    "Eq",
    "FullText",
    "In",
    "JSONSerializable",
    "Key",
    "KeyLookup",
    "KeyPresent",
    "KeysFilter",
    "Like",
    "NoBool",
    "NotEq",
    "NotIn",
    "Operator",
    "Query",
    "QueryValueError",
    "Regex",
    "SpecQuery",
    "SpecsQuery",
    "StructureFamily",
    "StructureFamilyQuery",
    "encode_queries",
]

JSONSerializable = Any
"""Any value that can be JSON-encoded: str, int, float, bool, None, list, dict."""

Pairs = list[tuple[str, str]]


class QueryValueError(ValueError):
    """A query argument has an invalid value."""


class Operator(str, enum.Enum):
    """Binary comparison operators accepted by ``Comparison``."""

    lt = "lt"
    gt = "gt"
    le = "le"
    ge = "ge"


# --------------------------------------------------------------------------
# Argument checks and value conversion (private)
# --------------------------------------------------------------------------


def _dumps(value: Any) -> str:
    """Compact JSON text of an already-normalised value."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _is_numpy(value: Any) -> bool:
    return type(value).__module__ == "numpy" and hasattr(value, "tolist")


def _to_json_value(value: Any, what: str) -> Any:
    """Return ``value`` as plain JSON-ready Python objects.

    numpy scalars and arrays become Python scalars and lists, tuples become
    lists, str subclasses become ``str``. Raises ``TypeError`` for anything
    JSON cannot represent (and for non-string mapping keys) and
    ``QueryValueError`` for NaN or infinite floats.
    """
    if value is None or type(value) in (bool, int, str):
        return value
    if isinstance(value, enum.Enum):
        return _to_json_value(value.value, what)
    if _is_numpy(value):
        return _to_json_value(value.tolist(), what)
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
            result[str.__str__(key)] = _to_json_value(item, what)
        return result
    if isinstance(value, (list, tuple)):
        return [_to_json_value(item, what) for item in value]
    raise TypeError(f"{what} must be JSON-serialisable, not {type(value).__name__}")


def _check_str(value: Any, what: str, *, allow_empty: bool = False) -> str:
    """Return ``value`` as a plain ``str``; ``TypeError``/``QueryValueError`` otherwise."""
    if _is_numpy(value):
        value = value.tolist()
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value and not allow_empty:
        raise QueryValueError(f"{what} must not be empty")
    return str.__str__(value)


def _check_bool(value: Any, what: str) -> bool:
    if _is_numpy(value):
        value = value.tolist()
    if not isinstance(value, bool):
        raise TypeError(f"{what} must be a bool, not {type(value).__name__}")
    return value


def _check_sequence(value: Any, what: str) -> list[Any]:
    """Return a list of the items of ``value``, which must be a non-string iterable."""
    if _is_numpy(value):
        value = value.tolist()
    if isinstance(value, (str, bytes, bytearray, Mapping)) or not isinstance(value, Iterable):
        raise TypeError(f"{what} must be a list (or other iterable), not {type(value).__name__}")
    return list(value)


def _check_str_list(value: Any, what: str) -> list[str]:
    return [_check_str(item, f"each of {what}") for item in _check_sequence(value, what)]


def _check_enum(enum_type: type[enum.Enum], value: Any, what: str) -> Any:
    try:
        return enum_type(value)
    except ValueError:
        allowed = ", ".join(repr(member.value) for member in enum_type)
        raise QueryValueError(f"{what} must be one of {allowed}, not {value!r}") from None


def _bool_text(value: bool) -> str:
    return "true" if value else "false"


# --------------------------------------------------------------------------
# Base classes
# --------------------------------------------------------------------------


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


def _query(cls: type) -> type:
    """Class decorator: a frozen dataclass that keeps ``Query``'s eq and hash."""
    return dataclass(frozen=True, eq=False)(cls)


def _set(obj: Any, **values: Any) -> None:
    for attr, value in values.items():
        object.__setattr__(obj, attr, value)


# --------------------------------------------------------------------------
# Query types
# --------------------------------------------------------------------------


@_query
class FullText(Query):
    """Match nodes whose metadata contains ``text`` as a whole word (case-insensitive).

    Args:
        text: the word(s) to look for; must be a non-empty str.

    Raises:
        TypeError: ``text`` is not a str. QueryValueError: it is empty.
    """

    name: ClassVar[str] = "fulltext"
    text: str

    def __post_init__(self) -> None:
        _set(self, text=_check_str(self.text, "FullText text"))
        self._encode_now()

    def _fields(self) -> list[tuple[str, str]]:
        return [("text", self.text)]


@_query
class KeyLookup(Query):
    """Match the single child named ``key`` (the server applies it after all other filters).

    Args:
        key: the child's key.

    Raises:
        TypeError: ``key`` is not a str. QueryValueError: it is empty.
    """

    name: ClassVar[str] = "lookup"
    key: str

    def __post_init__(self) -> None:
        _set(self, key=_check_str(self.key, "KeyLookup key"))
        self._encode_now()

    def _fields(self) -> list[tuple[str, str]]:
        return [("key", self.key)]


@_query
class KeysFilter(Query):
    """Keep only the children whose key is one of ``keys``.

    Args:
        keys: a list (or other non-string iterable) of str keys.

    Raises:
        TypeError: ``keys`` is a str or not iterable, or holds a non-str.
    """

    name: ClassVar[str] = "keys_filter"
    keys: list[str]

    def __post_init__(self) -> None:
        _set(self, keys=_check_str_list(self.keys, "KeysFilter keys"))
        self._encode_now()

    def _fields(self) -> list[tuple[str, str]]:
        return [("keys", _dumps(self.keys))]


@_query
class Regex(Query):
    """Match a metadata value against a regular expression.

    Not supported by SQL catalogs (the server answers 400); only in-memory
    (mapping) trees implement it.

    Args:
        key: dotted metadata path, e.g. ``"sample.name"``.
        pattern: a Python regular expression.
        case_sensitive: default True.

    Raises:
        TypeError: wrong argument types. QueryValueError: empty key, or a
        pattern that does not compile.
    """

    name: ClassVar[str] = "regex"
    key: str
    pattern: str
    case_sensitive: bool = True

    def __post_init__(self) -> None:
        pattern = _check_str(self.pattern, "Regex pattern", allow_empty=True)
        try:
            re.compile(pattern)
        except re.error as err:
            raise QueryValueError(f"Regex pattern {pattern!r} is invalid: {err}") from None
        _set(
            self,
            key=_check_str(self.key, "Regex key"),
            pattern=pattern,
            case_sensitive=_check_bool(self.case_sensitive, "Regex case_sensitive"),
        )
        self._encode_now()

    def _fields(self) -> list[tuple[str, str]]:
        return [
            ("key", self.key),
            ("pattern", self.pattern),
            ("case_sensitive", _bool_text(self.case_sensitive)),
        ]


class _KeyValue(Query):
    """Shared checks of the ``(key, JSON value)`` queries."""

    key: str
    value: JSONSerializable

    def __post_init__(self) -> None:
        label = type(self).__name__
        _set(
            self,
            key=_check_str(self.key, f"{label} key"),
            value=_to_json_value(self.value, f"{label} value"),
        )
        self._encode_now()

    def _fields(self) -> list[tuple[str, str]]:
        return [("key", self.key), ("value", _dumps(self.value))]


@_query
class Eq(_KeyValue):
    """Match nodes whose metadata value at ``key`` equals ``value``.

    Args:
        key: dotted metadata path, e.g. ``"color"`` or ``"sample.name"``.
        value: a JSON-serialisable value (numpy scalars are accepted). Note
            that SQLite catalogs only compare str, int, float and bool values.

    Raises:
        TypeError: ``key`` is not a str or ``value`` is not JSON-serialisable.
        QueryValueError: empty key, or a NaN/infinite float.
    """

    name: ClassVar[str] = "eq"
    key: str
    value: JSONSerializable


@_query
class NotEq(_KeyValue):
    """Match nodes whose metadata value at ``key`` differs from ``value``.

    Args and errors as for ``Eq``. Nodes lacking ``key`` do not match.
    """

    name: ClassVar[str] = "noteq"
    key: str
    value: JSONSerializable


@_query
class Contains(_KeyValue):
    """Match nodes whose metadata value at ``key`` contains ``value``.

    Args and errors as for ``Eq``. On SQLite catalogs this is a substring
    test on the JSON text of the stored value.
    """

    name: ClassVar[str] = "contains"
    key: str
    value: JSONSerializable


@_query
class Comparison(Query):
    """Compare the metadata value at ``key`` with ``value``: ``key <operator> value``.

    Args:
        operator: ``"lt"``, ``"gt"``, ``"le"``, ``"ge"`` or an ``Operator``.
        key: dotted metadata path.
        value: a JSON-serialisable value, usually a number or a string.

    Raises:
        QueryValueError: unknown operator, empty key, NaN/infinite value.
        TypeError: ``key`` not a str, ``value`` not JSON-serialisable.
    """

    name: ClassVar[str] = "comparison"
    operator: Operator
    key: str
    value: JSONSerializable

    def __post_init__(self) -> None:
        _set(
            self,
            operator=_check_enum(Operator, self.operator, "Comparison operator"),
            key=_check_str(self.key, "Comparison key"),
            value=_to_json_value(self.value, "Comparison value"),
        )
        self._encode_now()

    def _fields(self) -> list[tuple[str, str]]:
        return [
            ("operator", self.operator.value),
            ("key", self.key),
            ("value", _dumps(self.value)),
        ]


class _Membership(Query):
    """Shared checks of ``In`` and ``NotIn``."""

    key: str
    value: list[JSONSerializable]

    def __post_init__(self) -> None:
        label = type(self).__name__
        items = _check_sequence(self.value, f"{label} value")
        _set(
            self,
            key=_check_str(self.key, f"{label} key"),
            value=[_to_json_value(item, f"{label} value") for item in items],
        )
        self._encode_now()

    def _fields(self) -> list[tuple[str, str]]:
        return [("key", self.key), ("value", _dumps(self.value))]


@_query
class In(_Membership):
    """Match nodes whose metadata value at ``key`` is one of ``value``.

    Args:
        key: dotted metadata path.
        value: a list (or other non-string iterable) of JSON-serialisable
            values. An empty list matches nothing.

    Raises:
        TypeError: ``value`` is a str/mapping or not iterable, or holds a
        non-JSON item; ``key`` not a str. QueryValueError: empty key.
    """

    name: ClassVar[str] = "in"
    key: str
    value: list[JSONSerializable]


@_query
class NotIn(_Membership):
    """Match nodes whose metadata value at ``key`` is none of ``value``.

    Args and errors as for ``In``. An empty list matches every node.
    """

    name: ClassVar[str] = "notin"
    key: str
    value: list[JSONSerializable]


@_query
class KeyPresent(Query):
    """Match nodes whose metadata has (or, with ``exists=False``, lacks) ``key``.

    Args:
        key: dotted metadata path.
        exists: default True.

    Raises:
        TypeError: ``key`` not a str or ``exists`` not a bool.
        QueryValueError: empty key.
    """

    name: ClassVar[str] = "keypresent"
    key: str
    exists: bool = True

    def __post_init__(self) -> None:
        _set(
            self,
            key=_check_str(self.key, "KeyPresent key"),
            exists=_check_bool(self.exists, "KeyPresent exists"),
        )
        self._encode_now()

    def _fields(self) -> list[tuple[str, str]]:
        return [("key", self.key), ("exists", _bool_text(self.exists))]


@_query
class Like(Query):
    """Match a string metadata value with an SQL ``LIKE`` pattern (``%`` and ``_`` wildcards).

    Args:
        key: dotted metadata path.
        pattern: e.g. ``"Ni%"``.

    Raises:
        TypeError: ``key`` or ``pattern`` not a str. QueryValueError: empty key.
    """

    name: ClassVar[str] = "like"
    key: str
    pattern: str

    def __post_init__(self) -> None:
        _set(
            self,
            key=_check_str(self.key, "Like key"),
            pattern=_check_str(self.pattern, "Like pattern", allow_empty=True),
        )
        self._encode_now()

    def _fields(self) -> list[tuple[str, str]]:
        return [("key", self.key), ("pattern", _dumps(self.pattern))]


@_query
class SpecsQuery(Query):
    """Match nodes having every spec in ``include`` and none in ``exclude``.

    Args:
        include: spec names (a list, not a single str).
        exclude: spec names; default none.

    Raises:
        TypeError: either argument is a str or not iterable, or holds a non-str.
    """

    name: ClassVar[str] = "specs"
    include: list[str]
    exclude: list[str] | None = None

    def __post_init__(self) -> None:
        exclude = [] if self.exclude is None else self.exclude
        _set(
            self,
            include=_check_str_list(self.include, "SpecsQuery include"),
            exclude=_check_str_list(exclude, "SpecsQuery exclude"),
        )
        self._encode_now()

    def _fields(self) -> list[tuple[str, str]]:
        return [("include", _dumps(self.include)), ("exclude", _dumps(self.exclude))]


def SpecQuery(spec: str) -> SpecsQuery:
    """Match nodes having the spec ``spec``; same as ``SpecsQuery([spec])``.

    Raises:
        TypeError: ``spec`` is not a str.
    """
    return SpecsQuery([_check_str(spec, "SpecQuery spec")])


@_query
class AccessTagsFilter(Query):
    """Match nodes carrying at least one of the access ``tags`` (empty list: nothing).

    Args:
        tags: access tag names (a list, not a single str).

    Raises:
        TypeError: ``tags`` is a str or not iterable, or holds a non-str.
    """

    name: ClassVar[str] = "access_tags_filter"
    tags: list[str]

    def __post_init__(self) -> None:
        _set(self, tags=_check_str_list(self.tags, "AccessTagsFilter tags"))
        self._encode_now()

    def _fields(self) -> list[tuple[str, str]]:
        return [("tags", _dumps(self.tags))]


@_query
class StructureFamilyQuery(Query):
    """Match nodes of one structure family.

    Args:
        value: ``"array"``, ``"table"``, ``"container"``, ... or a ``StructureFamily``.

    Raises:
        QueryValueError: unknown family.
    """

    name: ClassVar[str] = "structure_family"
    value: StructureFamily

    def __post_init__(self) -> None:
        _set(self, value=_check_enum(StructureFamily, self.value, "StructureFamilyQuery value"))
        self._encode_now()

    def _fields(self) -> list[tuple[str, str]]:
        return [("value", self.value.value)]


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


class Key:
    """Build queries on a metadata key with Python operators.

    ``Key("color") == "red"`` gives ``Eq("color", "red")``; ``!=`` gives
    ``NotEq``; ``<``, ``>``, ``<=``, ``>=`` give ``Comparison``. A ``Key`` is
    not itself a query. (``in`` cannot be overloaded: use ``In``/``NotIn``.)

    Args:
        key: dotted metadata path.

    Raises:
        TypeError: ``key`` not a str. QueryValueError: empty key.
    """

    __slots__ = ("key",)
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, key: str) -> None:
        self.key = _check_str(key, "Key key")

    def __repr__(self) -> str:
        return f"Key({self.key!r})"

    def __eq__(self, value: Any) -> Eq:  # type: ignore[override]
        return Eq(self.key, value)

    def __ne__(self, value: Any) -> NotEq:  # type: ignore[override]
        return NotEq(self.key, value)

    def __lt__(self, value: Any) -> Comparison:
        return Comparison(Operator.lt, self.key, value)

    def __gt__(self, value: Any) -> Comparison:
        return Comparison(Operator.gt, self.key, value)

    def __le__(self, value: Any) -> Comparison:
        return Comparison(Operator.le, self.key, value)

    def __ge__(self, value: Any) -> Comparison:
        return Comparison(Operator.ge, self.key, value)


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
