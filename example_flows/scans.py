"""A small "facility" story: write scans with metadata, search them, read them back."""

from __future__ import annotations

import datetime
import uuid

import numpy as np

from tiled_core.client import from_uri
from tiled_core.queries import Comparison, Eq


def run(uri: str, api_key: str | None, *, n_scans: int = 6, say=print) -> dict:
    """Write ``n_scans`` scans under a fresh container, then search, list and read them.

    Returns a summary dict; raises if anything read back differs from what was written.
    """
    root = from_uri(uri, api_key=api_key)
    try:
        run_key = f"example-{datetime.datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
        runs = root.create_container(run_key, metadata={"purpose": "tiled-core example", "scans": n_scans})
        say(f"created container {runs.uri}")
        rng = np.random.default_rng(0)
        written = {}
        for i in range(n_scans):
            sample = ["Cu", "Ni", "Fe"][i % 3]
            scan = runs.create_container(f"scan{i:03d}", metadata={"sample": sample, "temperature": 280 + 10 * i})
            image = rng.random((64, 128))
            scan.write_array(image, key="image", metadata={"units": "counts"}, dims=["y", "x"])
            scan.write_array(image.sum(axis=0), key="profile", dims=["x"])
            written[scan.item["id"]] = image
        say(f"wrote {n_scans} scans, each with an image (64x128) and a profile")

        copper = runs.search(Eq("sample", "Cu"))
        hot = copper.search(Comparison("gt", "temperature", 300))
        say(f"search sample == 'Cu': {list(copper.keys())}")
        say(f"  ... and temperature > 300: {list(hot.keys())}")

        for key, scan in runs.items():
            image = scan["image"].read()
            if not np.array_equal(image, written[key]):
                raise RuntimeError(f"{key}/image read back differs from what was written")
            crop = scan["image"][10:20, ::-1]
            if not np.array_equal(crop, written[key][10:20, ::-1]):
                raise RuntimeError(f"{key}/image slice read back differs")
        say(f"read back all {len(runs)} scans: identical")
        return {
            "container": runs.uri,
            "scans": len(runs),
            "copper": list(copper.keys()),
            "copper_above_300K": list(hot.keys()),
        }
    finally:
        root.context.close()
