"""The node clients: the seed API under ``tiled_core.client``.

Public modules (the reference client's paths): ``constructors`` (``from_uri``,
``from_profile``, ``from_context``), ``context`` (``Context``), ``base``,
``container`` (with ``search_deep``'s ``DeepSearchResults``), ``array``,
``dataframe``, ``sparse``, ``awkward``, ``ragged``, ``xarray`` (one client class per
structure family), ``composite`` (``CompositeClient``, the composite spec), ``cache`` (``Cache``),
``metadata_update``, ``sync`` (``copy``; the engine is :mod:`tiled_core.copy`),
``register`` (registering directories of existing files), and for code that schedules its own uploads
``conflict`` and ``blocks``.
For scripting and debugging: ``logger`` (``record_history``, ``show_logs``,
``hide_logs``), ``utils`` (``handle_error``, ``retry_context``, ``ClientError``,
``get_asset_filepaths``), ``transport`` (``Transport``) and ``smoke`` (``read``: read a whole tree).

Internal rooms, one concern each:

- ``reading/``: slicing, block and partition reads, lazy page structures;
- ``writing/``: uploads, ``on_conflict`` and the incomplete mark, metadata patches;
- ``login/``: password logins and masked views of secrets;
- ``registering/``: describing existing files (structure, mimetype, assets) for registration;
- ``_dispatch``: which client class serves a node, from its family and specs;
- ``_deep_search``: the paged results of ``Container.search_deep``;
- ``_links``: a node's ``links``, built on the client when the server leaves them out.
"""

from .constructors import SERVERS, from_context, from_profile, from_uri, simple
from ._tree import tree
from .context import Context
from .logger import hide_logs, record_history, show_logs

__all__ = ["from_uri", "from_profile", "from_context", "simple", "SERVERS", "Context", "tree", "record_history", "show_logs", "hide_logs"]
