"""Reading helpers of the node clients (internal): requests and decoding a read needs.

- ``_slicing``: normalizes a numpy-style selection and maps it onto blocks.
- ``_array_io``: array reads and writes by block or selection over a ``Session``.
- ``_table_io``: table partitions and columns as Arrow, the SQL one-at-a-time rule.
- ``_sparse_io``: COO blocks and selections of sparse arrays.
- ``_awkward_plan``: which awkward buffers a slice needs.
- ``_ragged_select``: a ragged selection as the server's ``?slice=``, checked first.
- ``_composite_read``: a composite node's parts read into one ``xarray.Dataset``.
- ``_lazy_structure``: a container page's structures, fetched once when first used.
- ``_wide_table``: an xarray dataset's short 1-D variables as one table per dimension.
- ``_raw_export``: the files backing a node, downloaded as stored (asset manifest and bytes).
- ``_limits``: the error for a response over the size the client accepts.
"""
