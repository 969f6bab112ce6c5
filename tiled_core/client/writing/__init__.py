"""Writing helpers of the node clients (internal): uploads, the safe-rerun protocol, metadata.

- ``_container_writes``: the container's ``new``, ``create_container``, ``write_*``, ``register`` and deletes.
- ``_conflict``: ``on_conflict`` ("error"/"skip"/"replace"), the incomplete mark,
  ``begin_write``/``finish_write`` (public through ``tiled_core.client.conflict``).
- ``_upload``: array data sources and block uploads (one request or many).
- ``_table_upload``: table data sources and partition uploads.
- ``_ragged_upload``: ragged data sources and row-partition uploads (in order, never resent).
- ``_metadata``: JSON-safe metadata and specs, and the patches that update them.
- ``_readonly``: read-only views of metadata handed to users.
- ``_revisions``: a node's metadata revisions.
- ``_keys``: which keys a node may have, checked before any request.
- ``_batch``: ``Container.batch()``: many writes, creates in order, data overlapping (public through ``tiled_core.client.batch``).
- ``_create``: the create itself: a lost answer resolved by looking the key up, clearer 409s and 500s.
"""
