"""``Key``: build queries on a metadata key with Python operators (``Key("x") > 1``)."""

from __future__ import annotations

from typing import Any

from ._checks import check_str
from ._types import Comparison, Eq, NotEq, Operator

__all__ = ["Key"]


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
        self.key = check_str(key, "Key key")

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
