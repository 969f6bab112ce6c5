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

Layout (the query classes show this package as their module):

- ``_checks.py``: argument checks, and conversion of values to plain JSON-ready objects.
- ``_base.py``: the ``Query`` base class and the query-string encoding every query shares.
- ``_types.py``: the query types, one per server filter (``Eq``, ``Comparison``, ...).
- ``_key.py``: ``Key``, which builds queries with Python operators.
"""

from .._public import show_public_path
from ..structures import StructureFamily  # one definition of the families, re-exported here
from ._base import NoBool, Query, encode_queries
from ._checks import QueryValueError
from ._key import Key
from ._types import (
    AccessTagsFilter,
    Comparison,
    Contains,
    Eq,
    FullText,
    In,
    JSONSerializable,
    KeyLookup,
    KeyPresent,
    KeysFilter,
    Like,
    NotEq,
    NotIn,
    Operator,
    Regex,
    SpecQuery,
    SpecsQuery,
    StructureFamilyQuery,
)

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

# Container.search tells these query types from one's own by this module name
# (a query type of one's own is first checked against the server's list).
show_public_path(globals(), __all__)
