"""The JSON schema of one profile, and the most helpful message for content that breaks it."""

from __future__ import annotations

import collections.abc
from typing import Any

import jsonschema

__all__ = ["PROFILE_SCHEMA", "schema_problem"]

_TIMEOUT_KEYS = ("connect", "connection", "read", "write", "pool")
_NUMBER_OR_NULL = {"type": ["number", "null"], "minimum": 0}

#: JSON schema for the content of one profile. Same keys as the reference
#: ``client_profiles.yml``; value types are a little stricter where the
#: reference would only fail later (header values must be strings, mapping
#: ``structure_clients`` values must be import strings, cache sizes >= 0) and a
#: little wider where useful (``timeout`` may be a single number; ``connect``
#: is the timeout key, ``connection`` is accepted as the reference's spelling;
#: ``cache`` also takes ``allow_offline`` and ``max_age``).
PROFILE_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "additionalProperties": False,
    "oneOf": [{"required": ["uri"]}, {"required": ["direct"]}],
    "properties": {
        "uri": {"type": "string", "minLength": 1},
        "direct": {"type": "object"},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "structure_clients": {
            "anyOf": [
                {"type": "string", "enum": ["numpy", "dask"]},
                {"type": "object", "additionalProperties": {"type": "string"}},
            ]
        },
        "cache": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "filepath": {"type": "string"},
                "capacity": {"type": "number", "minimum": 0},
                "max_item_size": {"type": "number", "minimum": 0},
                "readonly": {"type": "boolean"},
                # tiled_core additions (see tiled_core.client.cache.Cache)
                "allow_offline": {"type": "boolean"},
                "max_age": {"type": ["number", "null"], "minimum": 0},
            },
        },
        "timeout": {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {key: _NUMBER_OR_NULL for key in _TIMEOUT_KEYS},
                    "not": {"required": ["connect", "connection"]},
                },
            ]
        },
        "token_cache": {"type": "string"},
        "max_connections": {"type": "integer", "minimum": 1},
        "verify": {"type": "boolean"},
        # Deprecated: accepted so old files still load, ignored when connecting.
        "username": {"type": "string"},
        "auth_provider": {"type": "string"},
    },
}

_VALIDATOR = jsonschema.Draft7Validator(PROFILE_SCHEMA)


def schema_problem(content: Any) -> tuple[str, str] | None:
    """Return ``(key, message)`` for the most relevant schema error, or None."""
    if not isinstance(content, collections.abc.Mapping):
        return "", f"a profile must be a mapping of settings, not {type(content).__name__}"
    has_uri, has_direct = "uri" in content, "direct" in content
    if has_uri and has_direct:
        return "uri", "a profile must set exactly one of 'uri' or 'direct', not both"
    if not (has_uri or has_direct):
        return "uri", "a profile must set 'uri' (or 'direct')"
    error = jsonschema.exceptions.best_match(_VALIDATOR.iter_errors(content))
    if error is None:
        return None
    key = ".".join(str(part) for part in error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = error.schema.get("properties", {})
        extra = sorted(str(k) for k in error.instance if k not in allowed)
        if extra:
            key = ".".join(filter(None, [key, extra[0]]))
            if allowed:
                return key, (
                    f"unknown key(s) {', '.join(map(repr, extra))}; "
                    f"allowed keys are {', '.join(sorted(allowed))}"
                )
    if error.validator == "not" and key == "timeout":
        return key, "give 'connect' or its old spelling 'connection', not both"
    if error.validator == "anyOf" and key in _ANY_OF_HINTS:
        return key, f"{error.instance!r} is not valid: {_ANY_OF_HINTS[key]}"
    return key, error.message


_ANY_OF_HINTS = {
    "timeout": "expected a number of seconds or a mapping of connect/read/write/pool",
    "structure_clients": (
        "expected 'numpy', 'dask' or a mapping of structure family or spec "
        "to an import string 'package.module:Class'"
    ),
}
