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

Layout (the public names show this package as their module):

- ``_errors.py``: ``ProfileError`` and its kin, ``ProfileWarning``.
- ``_schema.py``: ``PROFILE_SCHEMA``, and the most helpful message for content that breaks it.
- ``_env.py``: ``$VAR`` expansion in profile values (and hiding the values in messages).
- ``_files.py``: the directories searched, reading their files, precedence between them.
- ``_resolve.py``: ``load_profiles``, ``list_profiles``, ``resolve_profile``.
- ``_edit.py``: the default profile's name; ``create_profile``, ``delete_profile``.
- ``_from_uri.py``: ``profile_to_from_uri_kwargs``.
"""

from .._public import show_public_path
from ._edit import create_profile, delete_profile, get_default_profile_name, set_default_profile_name
from ._errors import ProfileError, ProfileExists, ProfileNotFound, ProfileWarning
from ._files import paths
from ._from_uri import profile_to_from_uri_kwargs
from ._resolve import list_profiles, load_profiles, resolve_profile
from ._schema import PROFILE_SCHEMA

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

show_public_path(globals(), __all__)
