"""Changing profiles on disk: the default profile's name, creating and deleting profile files."""

from __future__ import annotations

import collections.abc
import os
from pathlib import Path

import yaml

from ._errors import ProfileError, ProfileExists, ProfileNotFound
from ._files import YAML_SUFFIXES, paths, profile_files
from ._resolve import list_profiles
from ._schema import schema_problem

__all__ = ["create_profile", "delete_profile", "get_default_profile_name", "set_default_profile_name"]

_DEFAULT_PROFILE_FILENAME = "default_profile"


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
    problem = schema_problem(content)
    if problem is not None:
        raise ProfileError(f"Cannot create profile {name!r}: {problem[0]}: {problem[1]}")
    directory = paths()[-1]
    filepath = directory / f"{name}.yml"
    for other in profile_files(directory):
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
        for suffix in YAML_SUFFIXES:
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
