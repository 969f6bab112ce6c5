"""Registering external files (internal): what a file holds, decided on the client.

The server reads registered files with its own readers; the client only has
to describe them: structure family, structure, mimetype, metadata and the
assets (file URIs) the server's reader is given.

- ``_uris``: file paths <-> ``file://`` URIs, and what a URI points at (file or directory, size).
- ``_mimetypes``: file extension -> mimetype, image-sequence grouping rules.
- ``_inspectors``: one small reader per format (TIFF, JPEG, NPY, CSV, Parquet,
  HDF5, Zarr, Excel...) giving structure, metadata and specs, with the
  interface of the reference's adapters (``from_uris``, ``structure()``,
  ``metadata()``, ``specs``), so user-supplied adapters plug in the same way.
- ``_files``: ``Container.register(*uris)``: one node from one or several files.
"""
