"""Comparing copied trees with the reference client (shared by test_copy and test_faults_copy)."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd

from tiled_core.client.conflict import INCOMPLETE_SPEC


def write_tree(ref_root, build, prefix: str) -> str:
    """Key of a new container ``<prefix>-<random>`` under ``ref_root`` (reference client) filled by ``build``."""
    parent = ref_root.create_container(f"{prefix}-{uuid.uuid4().hex[:8]}", metadata={"top": True})
    build(parent)
    return parent.item["id"]


def count_nodes(ref_node) -> int:
    return sum(1 + (count_nodes(child) if child.structure_family == "container" else 0)
               for child in ref_node.values())


def _array_print(array: np.ndarray) -> tuple:
    array = np.asarray(array)
    return array.dtype.str, array.shape, array.tobytes()


def read_table(ref_node):
    """A table read by the reference client one partition at a time.

    Its default reads partitions concurrently, which can crash a 0.2.20
    server holding the table in SQL (appendable tables): seen here twice.
    """
    import dask

    with dask.config.set(scheduler="synchronous"):
        return ref_node.read()


def _data_print(node):
    """What ``node``'s data reads as, in a form that compares with ``==`` (NaN included)."""
    family = node.structure_family
    if family == "array":
        return _array_print(node.read())
    if family == "table":
        frame = read_table(node)
        return (list(frame.columns), [str(t) for t in frame.dtypes],
                pd.util.hash_pandas_object(frame, index=True).tolist())
    if family == "sparse":
        return _array_print(node.read().todense())
    if family == "awkward":
        return node.read().to_list()
    if family == "ragged":
        return node.read().tolist()
    raise AssertionError(f"unexpected family {family}")  # pragma: no cover - a family this test does not know yet


def snapshot(ref_node, ordered: bool = True) -> dict[str, tuple]:
    """``{path: (family, metadata, specs, structure, data)}`` for every node under ``ref_node``.

    ``ref_node`` is a container or a mapping of key -> node (reference
    client). A container's "structure" is its keys: in order with
    ``ordered``, else sorted; path ``""`` holds those of ``ref_node`` itself.
    Children come from listings (``items()``), not one request each.
    """
    found: dict[str, tuple] = {}
    keys = _walk(ref_node, ordered, "", found)
    found[""] = ("container", None, None, keys, None)
    return found


def _walk(container, ordered: bool, prefix: str, found: dict) -> list[str]:
    keys = []
    for key, node in container.items():
        keys.append(key)
        path = f"{prefix}{key}"
        children = _walk(node, ordered, f"{path}/", found) if node.structure_family == "container" else None
        found[path] = node_entry(node, children)
    return keys if ordered else sorted(keys)


def node_entry(node, keys: list[str] | None = None) -> tuple:
    """One node's ``snapshot`` entry; a container's ``keys`` are given (its children, as listed)."""
    family = node.structure_family
    specs = [(s.name, s.version) for s in node.specs]
    if family == "container":
        return family, dict(node.metadata), specs, keys, None
    return family, dict(node.metadata), specs, node.structure(), _data_print(node)


def assert_same_tree(a, b, ordered: bool = True, expected: dict | None = None) -> None:
    """Same keys (in the same order), metadata, specs, structures and data (reference client on both).

    ``a`` and ``b`` are containers, or mappings of key -> node; ``expected``,
    when given, is ``snapshot(a, ordered)`` taken before (``a`` is then not read).
    Nothing missing, nothing extra, and no node of ``b`` still marked incomplete.
    """
    want = snapshot(a, ordered) if expected is None else expected
    have = snapshot(b, ordered)
    assert sorted(have) == sorted(want), "different nodes"
    for path, entry in want.items():
        assert INCOMPLETE_SPEC not in [name for name, _ in have[path][2] or []], f"/{path} is still marked incomplete"
        assert have[path] == entry, f"/{path} differs"
