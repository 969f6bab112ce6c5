"""Client profiles: named connection settings kept in YAML files.

A profile directory holds ``*.yml`` / ``*.yaml`` files, each a mapping of
profile names to profile content, for example::

    # ~/.config/tiled/profiles/lab.yml
    lab:
      uri: http://127.0.0.1:8000/api/v1
      headers: {Authorization: "Apikey ${LAB_TILED_KEY}"}
      timeout: {read: 60, write: 60}

The directories searched, their precedence, the schema and the
``default_profile`` file follow the reference ``tiled.profiles`` module, so
both clients see the same profiles. Differences are noted where they occur;
the main ones: nothing is cached (environment variables and files are read at
call time), an unset environment variable is an error when that profile is
resolved, and one invalid profile does not hide the other profiles in its file.
"""

from __future__ import annotations

import collections.abc
import copy
import os
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import platformdirs
import yaml

__all__ = [
    "PROFILE_SCHEMA",
    "ProfileError",
    "ProfileExists",
    "ProfileNotFound",
    "ProfileWarning",
    "create_profile",
    "delete_profile",
    "get_default_profile_name",
    "list_profiles",
    "load_profiles",
    "paths",
    "profile_to_from_uri_kwargs",
    "resolve_profile",
    "set_default_profile_name",
]

_YAML_SUFFIXES = (".yml", ".yaml")
_DEFAULT_PROFILE_FILENAME = "default_profile"
_TIMEOUT_KEYS = ("connect", "connection", "read", "write", "pool")


class ProfileError(ValueError):
    """A profile (or a profile file) is invalid or cannot be used."""


class ProfileNotFound(ProfileError, KeyError):
    """No profile with the requested name exists (also a ``KeyError``)."""

    def __str__(self) -> str:
        # KeyError would repr() the message; show it as written.
        return str(self.args[0]) if self.args else ""


class ProfileExists(ProfileError):
    """``create_profile`` would overwrite or shadow an existing profile."""


class ProfileWarning(UserWarning):
    """A profile file or profile was skipped, or a profile key is ignored."""


# ----------------------------------------------------------------- schema

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


def _schema_problem(content: Any) -> tuple[str, str] | None:
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


# ------------------------------------------------------------ directories


def paths() -> list[Path]:
    """Profile directories, lowest precedence first, duplicates dropped.

    ``$TILED_SITE_PROFILES`` replaces both system directories and
    ``$TILED_PROFILES`` both user directories. The variables are read on every
    call; an empty value counts as unset.
    """
    site = os.environ.get("TILED_SITE_PROFILES") or None
    user = os.environ.get("TILED_PROFILES") or None
    candidates = [
        Path(site) if site else Path("/etc/tiled/profiles"),
        Path(site) if site else Path(platformdirs.site_config_dir("tiled"), "profiles"),
        Path(sys.prefix, "etc", "tiled", "profiles"),
        Path(user) if user else Path.home() / ".config" / "tiled" / "profiles",
        Path(user) if user else Path(platformdirs.user_config_dir("tiled"), "profiles"),
    ]
    unique: list[Path] = []
    for candidate in candidates:
        if candidate not in unique:  # keep the first occurrence, as the reference does
            unique.append(candidate)
    return unique


def _profile_files(directory: Path) -> list[Path]:
    """YAML files (not dot-files) directly inside *directory*, sorted."""
    try:
        children = list(directory.iterdir())
    except OSError:  # missing, not a directory, or unreadable
        return []
    return sorted(
        child
        for child in children
        if child.suffix in _YAML_SUFFIXES and not child.name.startswith(".") and child.is_file()
    )


# ------------------------------------------------- environment expansion

_VARIABLE = re.compile(r"\$(?:(\$)|([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)\})")


def _expand(value: Any, missing: list[str], used: dict[str, str] | None = None) -> Any:
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
        return {key: _expand(item, missing, used) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_expand(item, missing, used) for item in value)
    return value


def _hide_expanded(text: str, used: dict[str, str]) -> str:
    """``text`` with each expanded variable's value shown as ``${NAME}``: values may be secrets (API keys)."""
    for name, value in sorted(used.items(), key=lambda item: -len(item[1])):
        if len(value) >= 4:  # shorter values are no secrets, and would match everywhere
            for shown in {value, repr(value)[1:-1]}:
                text = text.replace(shown, "${%s}" % name)
    return text


# --------------------------------------------------------------- scanning


@dataclass
class _Entry:
    """One profile as found in one file."""

    name: str
    path: Path
    content: Any  # env-expanded (unset variables left as written)
    missing: list[str] = field(default_factory=list)
    error: ProfileError | None = None


@dataclass
class _Scan:
    directories: list[Path]
    profiles: dict[str, _Entry]
    collisions: dict[str, list[Path]]
    bad_files: dict[Path, str]


def _problem(message: str, strict: bool) -> None:
    if strict:
        raise ProfileError(message)
    warnings.warn(message, ProfileWarning, stacklevel=4)


def _read_file(filepath: Path, strict: bool, bad_files: dict[Path, str]) -> list[_Entry]:
    """Parse one profile file into entries (invalid profiles carry an error)."""
    try:
        text = filepath.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        bad_files[filepath] = f"cannot be read: {err}"
        _problem(f"Skipping profile file {filepath}: cannot be read: {err}", strict)
        return []
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        detail = " ".join(str(err).split())
        bad_files[filepath] = f"is not valid YAML: {detail}"
        _problem(f"Skipping profile file {filepath}: not valid YAML: {detail}", strict)
        return []
    if data is None:
        bad_files[filepath] = "is empty"
        _problem(f"Skipping profile file {filepath}: it is empty.", strict)
        return []
    if not isinstance(data, collections.abc.Mapping):
        bad_files[filepath] = "is not a mapping of profile names to profiles"
        _problem(
            f"Skipping profile file {filepath}: expected a mapping of profile names "
            f"to profiles, found {type(data).__name__}.",
            strict,
        )
        return []
    entries = []
    for name, raw in data.items():
        if not isinstance(name, str):
            _problem(
                f"Skipping profile {name!r} in {filepath}: profile names must be strings.",
                strict,
            )
            continue
        missing: list[str] = []
        used: dict[str, str] = {}
        content = _expand(raw, missing, used)
        entry = _Entry(name, filepath, content, missing)
        problem = _schema_problem(content)
        if problem is not None:
            key, message = problem[0], _hide_expanded(problem[1], used)
            where = f" at key {key!r}" if key else ""
            note = (
                f" (unset environment variable(s) {', '.join(missing)} were left unexpanded)"
                if missing
                else ""
            )
            entry.error = ProfileError(
                f"Invalid profile {name!r} in {filepath}{where}: {message}{note}"
            )
            _problem(str(entry.error), strict)
        entries.append(entry)
    return entries


def _scan(strict: bool = False) -> _Scan:
    """Read every profile directory and resolve precedence.

    A later directory overrides an earlier one. A name defined by two files in
    the same directory is dropped (with a warning) unless a later directory
    defines it again. An invalid profile still takes its place in the order,
    so it hides profiles of the same name in earlier directories.
    """
    directories = paths()
    bad_files: dict[Path, str] = {}
    combined: dict[str, _Entry] = {}
    collisions: dict[str, list[Path]] = {}
    for directory in directories:
        by_name: dict[str, list[_Entry]] = {}
        for filepath in _profile_files(directory):
            for entry in _read_file(filepath, strict, bad_files):
                by_name.setdefault(entry.name, []).append(entry)
        for name, entries in by_name.items():
            collisions.pop(name, None)
            if len(entries) > 1:
                collisions[name] = [entry.path for entry in entries]
                combined.pop(name, None)
            else:
                combined[name] = entries[0]
    for name, filepaths in collisions.items():
        listing = "\n".join(f"  {p}" for p in filepaths)
        warnings.warn(
            f"Profile {name!r} is defined by more than one file in the same "
            f"directory and is ignored:\n{listing}\nRemove one of the definitions, "
            f"or override it in a file in {directories[-1]}.",
            ProfileWarning,
            stacklevel=3,
        )
    return _Scan(directories, combined, collisions, bad_files)


# ------------------------------------------------------------- public API


def load_profiles(strict: bool = False) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Map each usable profile name to ``(source file, content)``.

    Content has environment variables expanded; an unset variable is left as
    written here (``resolve_profile`` raises for it). Unreadable files and
    invalid profiles are skipped with a :class:`ProfileWarning`, or raise
    :class:`ProfileError` when *strict*. Files are re-read on every call.
    """
    scan = _scan(strict)
    return {
        name: (entry.path, copy.deepcopy(entry.content))
        for name, entry in scan.profiles.items()
        if entry.error is None
    }


def list_profiles() -> dict[str, Path]:
    """Map each usable profile name to the file that defines it."""
    return {name: path for name, (path, _) in load_profiles().items()}


def resolve_profile(name: str) -> dict[str, Any]:
    """Return the validated, environment-expanded content of profile *name*.

    Raises :class:`ProfileNotFound` (a ``KeyError``) listing the available
    names when there is no such profile, and :class:`ProfileError` when the
    profile is invalid, defined twice in one directory, or uses an unset
    environment variable.
    """
    scan = _scan()
    entry = scan.profiles.get(name)
    if entry is not None:
        if entry.error is not None:
            raise entry.error
        if entry.missing:
            plural = "s" if len(entry.missing) > 1 else ""
            names = ", ".join(f"${v}" for v in entry.missing)
            raise ProfileError(
                f"Profile {name!r} in {entry.path} uses environment variable{plural} "
                f"{names}, which {'are' if plural else 'is'} not set."
            )
        return copy.deepcopy(entry.content)
    if name in scan.collisions:
        listing = ", ".join(str(p) for p in scan.collisions[name])
        raise ProfileError(
            f"Profile {name!r} is defined by more than one file in the same "
            f"directory ({listing}); remove one of them."
        )
    available = sorted(n for n, e in scan.profiles.items() if e.error is None)
    message = (
        f"Profile {name!r} not found. Available profiles: {available or 'none'}. "
        f"Searched directories (lowest precedence first): "
        f"{', '.join(str(d) for d in scan.directories)}."
    )
    if scan.bad_files:
        skipped = "; ".join(f"{p} {why}" for p, why in scan.bad_files.items())
        message += f" Skipped files: {skipped}."
    raise ProfileNotFound(message)


def _default_profile_file() -> Path:
    return paths()[-1].parent / _DEFAULT_PROFILE_FILENAME


def get_default_profile_name() -> str | None:
    """Return the default profile's name, or None if none is set."""
    try:
        text = _default_profile_file().read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return text.strip() or None


def set_default_profile_name(name: str | None) -> None:
    """Make *name* the default profile; ``None`` clears the default.

    Raises :class:`ProfileNotFound` if *name* is not a usable profile.
    """
    filepath = _default_profile_file()
    if name is None:
        filepath.unlink(missing_ok=True)
        return
    if name not in list_profiles():
        raise ProfileNotFound(f"Profile {name!r} not found; cannot make it the default.")
    filepath.parent.mkdir(parents=True, exist_ok=True)
    filepath.write_text(name, encoding="utf-8")


def _check_profile_name(name: str) -> None:
    separators = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    if (
        not isinstance(name, str)
        or not name
        or name.startswith(".")
        or any(sep in name for sep in separators)
    ):
        raise ProfileError(
            f"Invalid profile name {name!r}: it must be non-empty, must not start "
            "with '.' and must not contain a path separator."
        )


def create_profile(uri: str, name: str, verify: bool = True, overwrite: bool = False) -> Path:
    """Write ``{name: {uri, verify}}`` to ``<user profiles dir>/<name>.yml``.

    Raises :class:`ProfileExists` if that file exists and not *overwrite*, or if
    another file in the same directory already defines *name* (which would
    make both definitions collide). Returns the file written.

    Arguments are in the reference's order, ``create_profile(uri, name)``.
    """
    _check_profile_name(name)
    content = {"uri": uri, "verify": verify}
    problem = _schema_problem(content)
    if problem is not None:
        raise ProfileError(f"Cannot create profile {name!r}: {problem[0]}: {problem[1]}")
    directory = paths()[-1]
    filepath = directory / f"{name}.yml"
    for other in _profile_files(directory):
        if other == filepath:
            continue
        try:
            data = yaml.safe_load(other.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if isinstance(data, collections.abc.Mapping) and name in data:
            raise ProfileExists(
                f"Profile {name!r} is already defined in {other}; edit or remove it there."
            )
    directory.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump({name: content}, default_flow_style=False)
    try:
        with open(filepath, "w" if overwrite else "x", encoding="utf-8") as file:
            file.write(text)
    except FileExistsError:
        raise ProfileExists(
            f"Profile {name!r} already exists at {filepath}. "
            "Use overwrite=True to replace it."
        ) from None
    return filepath


def delete_profile(name: str) -> Path | None:
    """Delete the file ``<name>.yml`` (or ``.yaml``) that holds profile *name*.

    Directories are searched from highest precedence down and only the first
    match is deleted; its path is returned. Returns None if there is no such
    file. Raises :class:`ProfileError` rather than delete a file that also
    defines other profiles, or when *name* lives in a file with another name.
    """
    for directory in reversed(paths()):
        for suffix in _YAML_SUFFIXES:
            filepath = directory / f"{name}{suffix}"
            if not filepath.is_file():
                continue
            try:
                data = yaml.safe_load(filepath.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                data = None  # unreadable: deleting it is what the caller wants
            if isinstance(data, collections.abc.Mapping):
                others = sorted(str(k) for k in data if k != name)
                if others:
                    raise ProfileError(
                        f"Not deleting {filepath}: it also defines profile(s) "
                        f"{', '.join(others)}. Edit the file instead."
                    )
            filepath.unlink()
            return filepath
    source = list_profiles().get(name)
    if source is not None:
        raise ProfileError(
            f"Profile {name!r} is defined in {source}, which holds other profiles "
            "or has another name; edit that file to remove it."
        )
    return None


# ------------------------------------------------------- from_uri mapping

_DEPRECATED_KEYS = ("username", "auth_provider")


def profile_to_from_uri_kwargs(profile: collections.abc.Mapping[str, Any]) -> dict[str, Any]:
    """Turn profile content (after any overrides) into ``from_uri`` keyword args.

    * ``uri``, ``headers``, ``verify``, ``max_connections`` and
      ``structure_clients`` pass through (mapping values stay import strings).
    * ``cache`` stays a mapping of ``Cache`` arguments (objects pass through).
    * ``timeout`` stays a number or a mapping with only the keys given;
      ``connection`` is renamed ``connect``. ``None`` values mean "no limit".
    * ``username``, ``auth_provider`` (deprecated) and ``token_cache`` (not a
      ``from_uri`` argument) are dropped with a :class:`ProfileWarning`.
    * Any other key (e.g. an ``api_key`` override) passes through unchanged.

    A ``direct`` profile raises :class:`ProfileError`: it describes an
    in-process server, which needs the ``tiled`` server package.
    """
    kwargs = dict(profile)
    if "direct" in kwargs:
        raise ProfileError(
            "This profile uses 'direct' (an in-process server configuration), which "
            "tiled_core does not support: it needs the tiled server package. Serve "
            "that configuration with `tiled serve config ...` and use a profile "
            "with a 'uri' instead."
        )
    if not kwargs.get("uri"):
        raise ProfileError("The profile has no 'uri'.")
    for key in _DEPRECATED_KEYS:
        if key in kwargs:
            del kwargs[key]
            warnings.warn(
                f"Profile key {key!r} is deprecated and ignored; use an API key "
                "(TILED_API_KEY or an 'Authorization: Apikey ...' header) or log in "
                "interactively.",
                ProfileWarning,
                stacklevel=2,
            )
    if "token_cache" in kwargs:
        del kwargs["token_cache"]
        warnings.warn(
            "Profile key 'token_cache' is ignored by tiled_core.",
            ProfileWarning,
            stacklevel=2,
        )
    timeout = kwargs.get("timeout")
    if isinstance(timeout, collections.abc.Mapping):
        timeout = dict(timeout)
        if "connection" in timeout:
            if "connect" in timeout:
                raise ProfileError("timeout: give 'connect' or 'connection', not both.")
            timeout["connect"] = timeout.pop("connection")
        kwargs["timeout"] = timeout
    for key in ("cache", "headers", "structure_clients"):
        value = kwargs.get(key)
        if isinstance(value, collections.abc.Mapping):
            kwargs[key] = dict(value)
    return kwargs
