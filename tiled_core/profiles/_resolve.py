"""Resolving profiles by name: the usable profiles, and the content of one."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from ._errors import ProfileError, ProfileNotFound
from ._files import scan_profiles

__all__ = ["list_profiles", "load_profiles", "resolve_profile"]


def load_profiles(strict: bool = False) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Map each usable profile name to ``(source file, content)``.

    Content has environment variables expanded; an unset variable is left as
    written here (``resolve_profile`` raises for it). Unreadable files and
    invalid profiles are skipped with a :class:`ProfileWarning`, or raise
    :class:`ProfileError` when *strict*. Files are re-read on every call.
    """
    scan = scan_profiles(strict)
    return {
        name: (entry.path, copy.deepcopy(entry.content))
        for name, entry in scan.profiles.items()
        if entry.error is None
    }


# The reference caches load_profiles() and offers cache_clear(); here files are read at each call.
load_profiles.cache_clear = lambda: None  # type: ignore[attr-defined]


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
    scan = scan_profiles()
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
