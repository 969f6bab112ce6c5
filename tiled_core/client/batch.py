"""Many writes into one container with their requests overlapping: ``Container.batch()``.

::

    with container.batch() as batch:
        for i, frame in enumerate(frames):
            batch.write_array(frame, key=f"frame{i:05d}", metadata={"index": i})
    nodes = batch.results()

Children are created in submission order; each node's data is sent while the
next nodes are created. Each write keeps the guarantees of ``write_array`` and
``write_table`` (``on_conflict``; a node looks incomplete until its last byte
is stored); the first failure stops the batch and is raised from the ``with``
block. See ``docs/writes.md``.
"""

from .writing._batch import WriteBatch

__all__ = ["WriteBatch"]
