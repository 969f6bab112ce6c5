"""The node clients: the seed API under ``tiled_core.client``.

Public modules (the reference client's paths): ``constructors`` (``from_uri``,
``from_profile``, ``from_context``), ``context`` (``Context``), ``base``,
``container``, ``array``, ``dataframe``, ``sparse``, ``awkward``, ``xarray``
(one client class per structure family), ``cache`` (``Cache``),
``metadata_update``, ``sync`` (``copy``; the engine is :mod:`tiled_core.copy`),
``register`` (registering directories of existing files), ``utils``
(``ClientError``, ``get_asset_filepaths``), and for code that schedules its own uploads ``conflict`` and ``blocks``.

Internal rooms, one concern each:

- ``reading/``: slicing, block and partition reads, lazy page structures;
- ``writing/``: uploads, ``on_conflict`` and the incomplete mark, metadata patches;
- ``login/``: password logins and masked views of secrets;
- ``registering/``: describing existing files (structure, mimetype, assets) for registration;
- ``_links``: a node's ``links`` as the server would give them;
- ``_dispatch``: which client class serves a node, from its family and specs.
"""

from .constructors import from_context, from_profile, from_uri
from ._tree import tree
from .context import Context

__all__ = ["from_uri", "from_profile", "from_context", "Context", "tree"]
