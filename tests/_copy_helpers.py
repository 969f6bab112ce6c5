"""Comparing copied trees with the reference client (shared by test_copy and test_faults_copy)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tiled_core.client._conflict import INCOMPLETE_SPEC


def count_nodes(ref_node) -> int:
    return sum(1 + (count_nodes(child) if child.structure_family == "container" else 0)
               for child in ref_node.values())


def assert_same_tree(a, b, ordered: bool = True) -> None:
    """Same keys (in the same order), metadata, specs, structures and data (reference client on both).

    ``a`` and ``b`` are containers, or mappings of key -> node.
    """
    assert list(a) == list(b) if ordered else sorted(a) == sorted(b)
    for key in a:
        x, y = a[key], b[key]
        assert x.structure_family == y.structure_family, key
        assert dict(x.metadata) == dict(y.metadata), key
        assert list(x.specs) == list(y.specs), key
        assert INCOMPLETE_SPEC not in [s.name for s in y.specs], key
        family = x.structure_family
        if family == "container":
            assert_same_tree(x, y, ordered)
            continue
        assert x.structure() == y.structure(), key
        if family == "array":
            np.testing.assert_array_equal(x.read(), y.read())
        elif family == "table":
            pd.testing.assert_frame_equal(x.read(), y.read())
        elif family == "sparse":
            np.testing.assert_array_equal(x.read().todense(), y.read().todense())
        elif family == "awkward":
            assert x.read().to_list() == y.read().to_list()
        elif family == "ragged":
            assert x.read().tolist() == y.read().tolist()
        else:  # pragma: no cover - a family this test does not know yet
            raise AssertionError(f"unexpected family {family}")
