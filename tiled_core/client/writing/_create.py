"""Creating a node so that a failure never leaves the caller guessing.

A create is one POST, which is never resent blindly: if its answer is lost,
the server may have made the node. :func:`create_node` resolves that by
looking the key up (the lookup is a GET, retried by the transport until the
server is back):

- absent: the create never arrived; it is sent again;
- present, incomplete (or holding no data) and *ours* (same family, structure,
  metadata and specs as this create sent): the create did arrive; the write
  goes on with that node;
- anything else took the key: :class:`Conflict`.

It also turns two server answers into errors that say what to do:

- 409 for a key whose node was left incomplete by an earlier write: the
  message says so and that ``on_conflict="skip"`` finishes it;
- 500 for a key with no node: tiled 0.2.20 makes an array's storage directory
  before it commits the node, so a server killed in between leaves a directory
  that makes every later create of that key fail. ``on_conflict="replace"``
  clears it (see :func:`_clear_left_behind_storage`).
"""

from __future__ import annotations

from ...structures import Spec
from ...transport import Conflict, ConnectionFailed, RequestTimeout, ServerError, TiledError, TruncatedResponse
from ._upload import intended_shape, reserved_rows

__all__ = ["answer_lost", "create_node"]

_GATEWAY = (502, 503, 504)  # a gateway's answer: the server behind it may or may not have acted
_MAX_CREATES = 4  # creates sent for one call when each answer is lost and the key stays absent


def answer_lost(error: BaseException) -> bool:
    """Whether a non-idempotent request may or may not have been acted on (its answer was lost)."""
    if isinstance(error, (ConnectionFailed, RequestTimeout, TruncatedResponse)):
        return True
    return isinstance(error, ServerError) and error.status in _GATEWAY


def create_node(container, family: str, data_sources: list[dict], *, key: str | None, metadata: dict | None,
                specs: list | None, access_tags: list[str] | None, on_conflict: str):
    """POST the node; resolve a lost answer by looking ``key`` up. Returns the node's client.

    Raises what the server answered (improved for an incomplete node or left-behind storage),
    or the transport error when the answer was lost and ``key`` is None (nothing to look up).
    """
    def post():
        return container.new(family, data_sources, key=key, metadata=metadata, specs=specs, access_tags=access_tags)

    for sent in range(1, _MAX_CREATES + 1):
        try:
            return post()
        except (ConnectionFailed, RequestTimeout, TruncatedResponse, ServerError) as error:
            if not answer_lost(error):
                if isinstance(error, Conflict):
                    raise _explained_conflict(container, key, error) from None
                if error.status != 500:
                    raise
                outcome = _when_left_behind(container, key, error, on_conflict, post)
                if isinstance(outcome, BaseException):
                    raise outcome from None
                return outcome
            if key is None:
                error.add_note("the create may or may not have reached the server, and the key was to be chosen by "
                               "the server, so it cannot be looked up; give key= to make reruns safe")
                raise
            try:
                existing = container.get(key)
            except TiledError as lookup:
                lookup.add_note(f"while looking up whether a create of {_where(container, key)}, whose answer was "
                                f"lost ({error}), had arrived")
                raise
            if existing is None and sent < _MAX_CREATES:
                continue  # it never arrived: sending it again cannot make a second node
            if existing is None:
                raise
            if _ours(existing, family, data_sources, metadata, specs):
                return existing  # it did arrive; the caller goes on filling it
            raise Conflict(409, f"{_where(container, key)} was created by someone else while this create's answer "
                           "was lost (its family, structure, metadata or specs differ); use on_conflict='replace' "
                           "to overwrite it", url=existing.uri) from error
    raise AssertionError("unreachable")  # pragma: no cover


def _when_left_behind(container, key, error: ServerError, on_conflict: str, post):
    """A 500 on create: the node (after clearing left-behind storage, with "replace"), or the error to raise."""
    if key is None or container.get(key) is not None:
        return error  # raised as is (its own traceback kept)
    if on_conflict != "replace" or not _clear_left_behind_storage(container, key):
        return _left_behind(container, key, error)
    try:
        return post()
    except ServerError as again:
        return _left_behind(container, key, again, cleared=True)


def _where(container, key: str) -> str:
    return "/" + "/".join((*container.path_parts, key))


def _ours(existing, family: str, data_sources: list[dict], metadata: dict | None, specs: list | None) -> bool:
    """Whether ``existing`` is what this create would have made, and not yet (or never) filled."""
    from ._conflict import is_incomplete, same_structure  # _conflict imports this module

    attributes = existing.item["attributes"]
    if existing.structure_family != family:
        return False
    if data_sources and not same_structure(family, data_sources[0]["structure"], attributes.get("structure")):
        return False
    if dict(attributes.get("metadata") or {}) != dict(metadata or {}):
        return False
    if [Spec.coerce(s).to_json() for s in attributes.get("specs") or []] != [Spec.coerce(s).to_json()
                                                                            for s in specs or []]:
        return False
    return family == "container" or is_incomplete(existing) or not _holds_data(attributes.get("structure"))


def _holds_data(structure: dict | None) -> bool:
    """False for a node created with nothing to send (an array of size zero)."""
    if structure and "chunks" in structure and reserved_rows(structure) is None:
        shape = intended_shape(structure)
        return all(shape) if shape else True
    return True


def _explained_conflict(container, key: str | None, error: Conflict) -> Conflict:
    """The 409 for an existing key, saying when that node is incomplete and how to finish it."""
    from ._conflict import is_incomplete, is_marked

    existing = container.get(key) if key is not None else None
    if existing is None or not is_incomplete(existing):
        return error
    how = "it carries the incomplete mark" if is_marked(existing) else "it was reserved and never filled"
    return Conflict(
        409, f"{_where(container, key)} exists but is incomplete: an earlier write of it did not finish ({how}). "
        "Rerun with on_conflict='skip' to finish it, or on_conflict='replace' to write it anew",
        url=error.url, request_id=error.request_id,
    )


def _left_behind(container, key: str, error: ServerError, *, cleared: bool = False) -> ServerError:
    where = _where(container, key)
    if cleared:
        detail = (f"the server failed to create {where} again after its left-behind storage was cleared "
                  f"({error.detail}); see the server's log")
    else:
        detail = (f"the server failed to create {where} ({error.detail}) although no node has that key: most "
                  "likely storage left behind by a create that never finished (a server killed mid-create). "
                  "Rerun with on_conflict='replace' to clear it, or ask the server's administrator to remove "
                  "that key's directory from the writable storage")
    return ServerError(error.status, detail, url=error.url, request_id=error.request_id)


def _clear_left_behind_storage(container, key: str) -> bool:
    """Remove ``key``'s left-behind storage directory through the API; True when done.

    tiled 0.2.20 keeps a node's writable storage in a directory named by the
    node's path. A one-row table can be created there (its storage accepts an
    existing directory); that node's data source then names the directory
    (its partition files are inside it). The directory itself is added to that
    data source as one more asset, and deleting the node deletes its assets:
    the directory goes with it. Only that node's own directory is ever named.
    """
    import pandas as pd

    session = container.context.session
    path = "/".join((*container.path_parts, key))
    try:
        container.write_dataframe(pd.DataFrame({"placeholder": [0]}), key=key,
                                  metadata={"tiled_core": "clearing storage left behind by an unfinished create"})
        item = session.get_document(f"metadata/{path}", [("include_data_sources", "true")])["data"]
        source = item["attributes"]["data_sources"][0]
        directories = {asset["data_uri"].rpartition("/")[0] for asset in source["assets"]}
        if len(directories) != 1 or source["management"] != "writable":
            container.delete(key)
            return False
        source["assets"].append({"data_uri": directories.pop(), "is_directory": True, "parameter": None,
                                 "num": None, "id": None})
        session.send("PUT", f"data_source/{path}", json={"data_source": source})
        container.delete(key)
    except ServerError:
        return False
    return True
