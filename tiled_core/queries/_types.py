"""The query types: one frozen dataclass per server filter (``Eq``, ``Comparison``, ``SpecsQuery``, ...)."""

# No ``from __future__ import annotations``: the facade gives these classes its
# module name, so string annotations could no longer be resolved by get_type_hints.
import enum
import re
from typing import Any, ClassVar

from ..structures import StructureFamily
from ._base import Query, bool_text, json_text, query_dataclass, set_fields
from ._checks import QueryValueError, check_bool, check_enum, check_sequence, check_str, check_str_list, to_json_value

__all__ = [
    "AccessTagsFilter",
    "Comparison",
    "Contains",
    "Eq",
    "FullText",
    "In",
    "JSONSerializable",
    "KeyLookup",
    "KeyPresent",
    "KeysFilter",
    "Like",
    "NotEq",
    "NotIn",
    "Operator",
    "Regex",
    "SpecQuery",
    "SpecsQuery",
    "StructureFamilyQuery",
]

JSONSerializable = Any
"""Any value that can be JSON-encoded: str, int, float, bool, None, list, dict."""


class Operator(str, enum.Enum):
    """Binary comparison operators accepted by ``Comparison``."""

    lt = "lt"
    gt = "gt"
    le = "le"
    ge = "ge"


@query_dataclass
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
        set_fields(self, text=check_str(self.text, "FullText text"))
        self._encode_now()

    def _fields(self) -> list[tuple[str, str]]:
        return [("text", self.text)]


@query_dataclass
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
        set_fields(self, key=check_str(self.key, "KeyLookup key"))
        self._encode_now()

    def _fields(self) -> list[tuple[str, str]]:
        return [("key", self.key)]


@query_dataclass
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
        set_fields(self, keys=check_str_list(self.keys, "KeysFilter keys"))
        self._encode_now()

    def _fields(self) -> list[tuple[str, str]]:
        return [("keys", json_text(self.keys))]


@query_dataclass
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
        pattern = check_str(self.pattern, "Regex pattern", allow_empty=True)
        try:
            re.compile(pattern)
        except re.error as err:
            raise QueryValueError(f"Regex pattern {pattern!r} is invalid: {err}") from None
        set_fields(
            self,
            key=check_str(self.key, "Regex key"),
            pattern=pattern,
            case_sensitive=check_bool(self.case_sensitive, "Regex case_sensitive"),
        )
        self._encode_now()

    def _fields(self) -> list[tuple[str, str]]:
        return [
            ("key", self.key),
            ("pattern", self.pattern),
            ("case_sensitive", bool_text(self.case_sensitive)),
        ]


class _KeyValue(Query):
    """Shared checks of the ``(key, JSON value)`` queries."""

    key: str
    value: JSONSerializable

    def __post_init__(self) -> None:
        label = type(self).__name__
        set_fields(
            self,
            key=check_str(self.key, f"{label} key"),
            value=to_json_value(self.value, f"{label} value"),
        )
        self._encode_now()

    def _fields(self) -> list[tuple[str, str]]:
        return [("key", self.key), ("value", json_text(self.value))]


@query_dataclass
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


@query_dataclass
class NotEq(_KeyValue):
    """Match nodes whose metadata value at ``key`` differs from ``value``.

    Args and errors as for ``Eq``. Nodes lacking ``key`` do not match.
    """

    name: ClassVar[str] = "noteq"
    key: str
    value: JSONSerializable


@query_dataclass
class Contains(_KeyValue):
    """Match nodes whose metadata value at ``key`` contains ``value``.

    Args and errors as for ``Eq``. On SQLite catalogs this is a substring
    test on the JSON text of the stored value.
    """

    name: ClassVar[str] = "contains"
    key: str
    value: JSONSerializable


@query_dataclass
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
        set_fields(
            self,
            operator=check_enum(Operator, self.operator, "Comparison operator"),
            key=check_str(self.key, "Comparison key"),
            value=to_json_value(self.value, "Comparison value"),
        )
        self._encode_now()

    def _fields(self) -> list[tuple[str, str]]:
        return [
            ("operator", self.operator.value),
            ("key", self.key),
            ("value", json_text(self.value)),
        ]


class _Membership(Query):
    """Shared checks of ``In`` and ``NotIn``."""

    key: str
    value: list[JSONSerializable]

    def __post_init__(self) -> None:
        label = type(self).__name__
        items = check_sequence(self.value, f"{label} value")
        set_fields(
            self,
            key=check_str(self.key, f"{label} key"),
            value=[to_json_value(item, f"{label} value") for item in items],
        )
        self._encode_now()

    def _fields(self) -> list[tuple[str, str]]:
        return [("key", self.key), ("value", json_text(self.value))]


@query_dataclass
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


@query_dataclass
class NotIn(_Membership):
    """Match nodes whose metadata value at ``key`` is none of ``value``.

    Args and errors as for ``In``. An empty list matches every node.
    """

    name: ClassVar[str] = "notin"
    key: str
    value: list[JSONSerializable]


@query_dataclass
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
        set_fields(
            self,
            key=check_str(self.key, "KeyPresent key"),
            exists=check_bool(self.exists, "KeyPresent exists"),
        )
        self._encode_now()

    def _fields(self) -> list[tuple[str, str]]:
        return [("key", self.key), ("exists", bool_text(self.exists))]


@query_dataclass
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
        set_fields(
            self,
            key=check_str(self.key, "Like key"),
            pattern=check_str(self.pattern, "Like pattern", allow_empty=True),
        )
        self._encode_now()

    def _fields(self) -> list[tuple[str, str]]:
        return [("key", self.key), ("pattern", json_text(self.pattern))]


@query_dataclass
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
        set_fields(
            self,
            include=check_str_list(self.include, "SpecsQuery include"),
            exclude=check_str_list(exclude, "SpecsQuery exclude"),
        )
        self._encode_now()

    def _fields(self) -> list[tuple[str, str]]:
        return [("include", json_text(self.include)), ("exclude", json_text(self.exclude))]


def SpecQuery(spec: str) -> SpecsQuery:
    """Match nodes having the spec ``spec``; same as ``SpecsQuery([spec])``.

    Raises:
        TypeError: ``spec`` is not a str.
    """
    return SpecsQuery([check_str(spec, "SpecQuery spec")])


@query_dataclass
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
        set_fields(self, tags=check_str_list(self.tags, "AccessTagsFilter tags"))
        self._encode_now()

    def _fields(self) -> list[tuple[str, str]]:
        return [("tags", json_text(self.tags))]


@query_dataclass
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
        set_fields(self, value=check_enum(StructureFamily, self.value, "StructureFamilyQuery value"))
        self._encode_now()

    def _fields(self) -> list[tuple[str, str]]:
        return [("value", self.value.value)]
