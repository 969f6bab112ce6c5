"""Public face of the safe-rerun write protocol, for code that schedules its own uploads.

``Container.write_*`` use it internally; integrations (Prefect flows writing
blocks from many tasks, Dagster IO managers) use it to give their writes the
same guarantees: ``on_conflict`` ("error", "skip", "replace") resolved before
anything is deleted, new nodes marked incomplete until their last byte is
stored, and :func:`is_incomplete` to recognise an interrupted write. The
semantics are documented in ``docs/writes.md``::

    target = begin_write(container, "array", [source], key=key, metadata=None, specs=None,
                         on_conflict="skip")
    if target.needs_upload:
        ...                            # send the data (blocks may go from many workers)
        finish_write(target.client)    # clears the mark
"""

from .writing._conflict import (
    INCOMPLETE_SPEC,
    ON_CONFLICT_CHOICES,
    WriteTarget,
    begin_write,
    check_on_conflict,
    finish_write,
    is_incomplete,
)

__all__ = [
    "INCOMPLETE_SPEC", "ON_CONFLICT_CHOICES", "WriteTarget", "begin_write", "check_on_conflict", "finish_write",
    "is_incomplete",
]
