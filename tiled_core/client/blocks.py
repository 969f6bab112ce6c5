"""Public block-level array I/O over a Session, for code that spreads blocks over its own tasks.

``ArrayClient.read_block``/``write_block`` cover interactive use; these
functions are what a worker needs when it holds only a ``Session`` (from a
``tiled_core.distributed.SessionHandle``), a node path and a block index.
"""

from .reading._array_io import block_slices, put_block, read_block_into
from .writing._upload import array_data_source

__all__ = ["array_data_source", "block_slices", "put_block", "read_block_into"]
