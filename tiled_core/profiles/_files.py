"""Locating and reading profile files: the directories searched, and their profiles by precedence."""

from __future__ import annotations

import collections.abc
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs
import yaml

from ._env import expand_variables, hide_expanded
from ._errors import ProfileError, ProfileWarning
from ._schema import schema_problem

__all__ = ["YAML_SUFFIXES", "ProfilePaths", "paths", "profile_files", "scan_profiles"]

YAML_SUFFIXES = (".yml", ".yaml")


def _default_paths() -> list[Path]:
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


class ProfilePaths(collections.abc.MutableSequence):
    """The profile directories searched, lowest precedence first: a list, as the reference's
    ``tiled.profiles.paths`` is (``paths.append(directory)`` adds one, ``paths.remove`` drops one).

    The standard directories are worked out from the environment at each use
    (``$TILED_SITE_PROFILES``, ``$TILED_PROFILES``); directories a script added
    follow them, and standard ones it removed stay out. ``paths()`` gives a
    plain list of the directories now.
    """

    def __init__(self) -> None:
        self._added: list[Path] = []
        self._removed: set[Path] = set()

    def __call__(self) -> list[Path]:
        listed = [p for p in _default_paths() if p not in self._removed]
        return listed + [p for p in self._added if p not in listed]

    def __len__(self) -> int:
        return len(self())

    def __getitem__(self, index):
        return self()[index]

    def __setitem__(self, index, value) -> None:
        if not isinstance(index, int):
            raise TypeError("profile paths take one directory at a time")
        del self[index]
        self.insert(index, value)

    def __delitem__(self, index) -> None:
        for directory in ([self()[index]] if isinstance(index, int) else self()[index]):
            if directory in self._added:
                self._added.remove(directory)
            else:
                self._removed.add(directory)

    def insert(self, index: int, value) -> None:
        """Add a directory (after the standard ones, whatever ``index``: they are rebuilt at each use)."""
        directory = Path(value)
        self._removed.discard(directory)
        if directory not in self._added:
            self._added.insert(max(0, index - len(self._defaults_kept())), directory)

    def _defaults_kept(self) -> list[Path]:
        return [p for p in _default_paths() if p not in self._removed]

    def __eq__(self, other) -> bool:
        return list(self) == list(other) if isinstance(other, collections.abc.Sequence) else NotImplemented

    def __repr__(self) -> str:
        return repr(self())


#: The profile directories (see ``ProfilePaths``).
paths = ProfilePaths()


def profile_files(directory: Path) -> list[Path]:
    """YAML files (not dot-files) directly inside *directory*, sorted."""
    try:
        children = list(directory.iterdir())
    except OSError:  # missing, not a directory, or unreadable
        return []
    return sorted(
        child
        for child in children
        if child.suffix in YAML_SUFFIXES and not child.name.startswith(".") and child.is_file()
    )


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
    """Every profile directory, read: profiles by precedence, names defined twice in one directory, skipped files."""

    directories: list[Path]
    profiles: dict[str, _Entry]
    collisions: dict[str, list[Path]]
    bad_files: dict[Path, str]


def _problem(message: str, strict: bool) -> None:
    """Raise when ``strict``, else warn (attributed to the caller of the public function)."""
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
        content = expand_variables(raw, missing, used)
        entry = _Entry(name, filepath, content, missing)
        problem = schema_problem(content)
        if problem is not None:
            key, message = problem[0], hide_expanded(problem[1], used)
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


def scan_profiles(strict: bool = False) -> _Scan:
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
        for filepath in profile_files(directory):
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
