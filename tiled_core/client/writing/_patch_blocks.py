"""``ArrayClient.patch`` inside the shape of an array whose last chunk is partial.

tiled 0.2.20 creates zarr storage rounded up to whole chunks, and every
``PATCH /array/full`` (even one well inside the shape, without ``extend``)
then sets the node's shape to that rounded-up size, so the array would gain
entries that were never written. A patch that fits is therefore sent as
block writes instead (``PUT /array/block`` leaves the structure alone): each
block the patch covers whole is sent as is; a block it covers in part is
read, updated and sent back.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..reading._array_io import put_block


def _overlaps(chunks: tuple[int, ...], start: int, stop: int):
    """``(block index, block start, block stop)`` of the blocks along one axis that ``[start, stop)`` meets."""
    edge = 0
    for index, size in enumerate(chunks):
        if edge < stop and edge + size > start:
            yield index, edge, edge + size
        edge += size


def patch_by_blocks(node, array: np.ndarray, offset: tuple[int, ...]) -> None:
    """Write ``array`` at ``offset`` into ``node`` one block at a time.

    Blocks go concurrently (at most ``Limits.concurrency`` at a time). Not
    atomic: a block the patch covers in part is read and rewritten whole, so
    another writer's change to the rest of that block in between is lost (as
    with any read-modify-write).
    """
    structure = node.structure()
    session = node.context.session
    end = [o + n for o, n in zip(offset, array.shape)]
    per_axis = [list(_overlaps(c, o, e)) for c, o, e in zip(structure.chunks, offset, end)]
    work = []
    for combination in itertools.product(*per_axis):
        block = tuple(index for index, _, _ in combination)
        inside = tuple(slice(max(o, b0) - b0, min(e, b1) - b0)
                       for (_, b0, b1), o, e in zip(combination, offset, end))
        source = tuple(slice(max(o, b0) - o, min(e, b1) - o)
                       for (_, b0, b1), o, e in zip(combination, offset, end))
        whole = all(s.start == 0 and s.stop == b1 - b0 for s, (_, b0, b1) in zip(inside, combination))
        work.append((block, inside, source, whole))

    def send(item) -> None:
        block, inside, source, whole = item
        if whole:
            data = array[source]
        else:
            data = np.array(node.read_block(block), dtype=structure.dtype, copy=True)
            data[inside] = array[source]
        put_block(session, node._path, block, data, structure.dtype)

    session.run_concurrently(send, work)
