"""Turning a profile's content into ``from_uri`` keyword arguments."""

from __future__ import annotations

import collections.abc
import warnings
from typing import Any

from ._errors import ProfileError, ProfileWarning

__all__ = ["profile_to_from_uri_kwargs"]


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
