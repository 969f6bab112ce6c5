"""Expansion of ``$VAR`` / ``${VAR}`` in profile values, and hiding the expanded values in messages."""

from __future__ import annotations

import collections.abc
import os
import re
from typing import Any

__all__ = ["expand_variables", "hide_expanded"]


_VARIABLE = re.compile(r"\$(?:(\$)|([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)\})")


def expand_variables(value: Any, missing: list[str], used: dict[str, str] | None = None) -> Any:
    """Expand ``$VAR`` / ``${VAR}`` in every string value (not keys), recursively.

    ``$$`` gives a literal ``$``. An unset variable is left as written and its
    name appended to *missing*; the variables expanded go into *used* (name -> value).
    """
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            if match.group(1):
                return "$"
            name = match.group(2) or match.group(3)
            if name in os.environ:
                if used is not None:
                    used[name] = os.environ[name]
                return os.environ[name]
            if name not in missing:
                missing.append(name)
            return match.group(0)

        return _VARIABLE.sub(substitute, value)
    if isinstance(value, collections.abc.Mapping):
        return {key: expand_variables(item, missing, used) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(expand_variables(item, missing, used) for item in value)
    return value


def hide_expanded(text: str, used: dict[str, str]) -> str:
    """``text`` with each expanded variable's value shown as ``${NAME}``: values may be secrets (API keys)."""
    for name, value in sorted(used.items(), key=lambda item: -len(item[1])):
        if len(value) >= 4:  # shorter values are no secrets, and would match everywhere
            for shown in {value, repr(value)[1:-1]}:
                text = text.replace(shown, "${%s}" % name)
    return text
