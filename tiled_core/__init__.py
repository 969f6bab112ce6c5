"""tiled_core: a fast, dependable client for Tiled data servers.

Layers, each importing only those below it:

- ``cli``: the ``tiled-core`` command.
- ``copy``: the bulk copy engine (public as ``tiled_core.client.sync.copy`` too).
- ``client``: the node clients and constructors (the seed API), with
  ``reading/``, ``writing/`` and ``login/`` helpers.
- ``distributed``: what crosses a process boundary to Dask workers.
- ``queries``, ``iterviews``, ``profiles``: query types, container views, profile files.
- ``codecs`` (bytes <-> numpy, Arrow, sparse, awkward, ragged), ``structures``
  (structure JSON as dataclasses), ``transport`` (all of HTTP: auth,
  retries, the response cache).
- ``server``: runs a real ``tiled serve`` for tests and examples (not a layer of the client).
"""

from ._version import __version__

__all__ = ["__version__"]
