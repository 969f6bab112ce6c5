"""Every name of the seed API resolves under tiled_core, except those still owed by open issues."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

SEED = Path(__file__).resolve().parents[2] / "shared" / "seed" / "python-client-api.txt"

# Names the open issues still owe (issue numbers in the tracker). This list must
# shrink as they land: the test fails if a name here starts to resolve.
PENDING: set[str] = set()


def seed_names() -> list[str]:
    names = re.findall(r"^(tiled\.[A-Za-z0-9_.]+)", SEED.read_text(), flags=re.M)
    return sorted(set(names))


def resolve(dotted: str):
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            obj = getattr(obj, attribute)
        return obj
    raise ImportError(dotted)


def test_seed_file_is_read():
    assert len(seed_names()) > 80


@pytest.mark.parametrize("name", seed_names())
def test_seed_name(name):
    ours = name.replace("tiled.", "tiled_core.", 1)
    if name in PENDING:
        with pytest.raises((ImportError, AttributeError)):
            resolve(ours)
        return
    obj = resolve(ours)
    reference = resolve(name)
    if callable(reference) and not isinstance(reference, property) and inspect.isfunction(reference):
        ours_params = list(inspect.signature(obj).parameters)
        theirs = list(inspect.signature(reference).parameters)
        assert ours_params[: len(theirs)] == theirs, f"{ours}{inspect.signature(obj)} vs {name}{inspect.signature(reference)}"
