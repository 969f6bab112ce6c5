"""Dagster example: raw scans -> reduced arrays -> summary table, one partition per scan.

An instrument writes each scan into the Tiled container ``RAW_PATH`` (here,
``simulate_instrument`` plays that part). The ``new_scans`` sensor adds every
new scan as a partition of ``scans`` and requests a run of ``raw_scan`` and
``reduced_scan`` for it; ``scan_summary`` gathers every reduced scan into a
table. All asset values live in Tiled, under ``BASE_PATH``, through
``TiledIOManager``; asset checks verify what was stored.

In the Dagster UI::

    TILED_URI=http://127.0.0.1:8000/api/v1 TILED_API_KEY=... dagster dev -f example_flows/dagster_scans.py

From code (what ``python -m example_flows`` and the tests do): ``run(uri, api_key)``.
"""

# No `from __future__ import annotations`: Dagster reads the asset functions' annotations at runtime.

import datetime
import uuid

import numpy as np
import pandas as pd
from dagster import (
    AssetExecutionContext,
    Config,
    DagsterInstance,
    Definitions,
    DynamicPartitionsDefinition,
    EnvVar,
    asset,
    build_sensor_context,
    materialize,
)

from dagster_tiled import TiledIOManager, TiledResource, tiled_asset_check, tiled_sensor

RAW_PATH = "instrument/scans"
BASE_PATH = "dagster-example"
IMAGE_SHAPE = (32, 64)
SUMMARY_COLUMNS = ["scan", "peak_position", "peak_height", "integral"]

scans = DynamicPartitionsDefinition(name="scans")


class RawScanConfig(Config):
    raw_path: str = RAW_PATH


@asset(partitions_def=scans, group_name="scans")
def raw_scan(context: AssetExecutionContext, config: RawScanConfig, tiled: TiledResource) -> np.ndarray:
    """The scan's detector image, as the instrument wrote it."""
    return tiled.get_client()[f"{config.raw_path}/{context.partition_key}/image"].read()


@asset(partitions_def=scans, group_name="scans")
def reduced_scan(raw_scan: np.ndarray) -> np.ndarray:
    """The image summed over its rows, minus the median: a 1-D profile."""
    profile = raw_scan.sum(axis=0)
    return profile - np.median(profile)


@asset(group_name="scans")
def scan_summary(reduced_scan: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per scan: where the peak is, how high, and the profile's integral."""
    return pd.DataFrame(
        [
            {"scan": key, "peak_position": int(np.argmax(p)), "peak_height": float(np.max(p)),
             "integral": float(p.sum())}
            for key, p in sorted(reduced_scan.items())
        ],
        columns=SUMMARY_COLUMNS,
    )


ASSETS = [raw_scan, reduced_scan, scan_summary]
CHECKS = [
    tiled_asset_check(reduced_scan, name="profile_stored", family="array", shape=(IMAGE_SHAPE[1],), dtype="float64",
                      metadata_keys=["dagster.run_id"]),
    tiled_asset_check(scan_summary, name="summary_columns", family="table", columns=SUMMARY_COLUMNS),
]


def build_definitions(raw_path: str = RAW_PATH, tiled: TiledResource | None = None) -> Definitions:
    """Assets, checks, the sensor and resources; the key comes from ``TILED_API_KEY`` by default."""
    if tiled is None:
        tiled = TiledResource(uri=EnvVar("TILED_URI"), api_key=EnvVar("TILED_API_KEY"), base_path=BASE_PATH)
    sensor = tiled_sensor(raw_path, name="new_scans", partitions_def=scans, target=[raw_scan, reduced_scan],
                          minimum_interval_seconds=15)
    return Definitions(
        assets=ASSETS, asset_checks=CHECKS, sensors=[sensor],
        resources={"tiled": tiled, "io_manager": TiledIOManager(tiled=tiled)},
    )


defs = build_definitions()  # what `dagster dev -f` loads


def simulate_instrument(client, raw_path: str, keys: list[str], *, seed: int = 0) -> dict[str, int]:
    """Write one scan per key (an image with a peak) into ``raw_path``; return each peak's column."""
    container = client
    for part in raw_path.split("/"):
        container = container.create_container(part, on_conflict="skip")
    rng = np.random.default_rng(seed)
    peaks = {}
    for key in keys:
        peak = int(rng.integers(8, IMAGE_SHAPE[1] - 8))
        image = rng.poisson(5.0, IMAGE_SHAPE).astype("float64")
        image[:, peak] += 50.0
        scan = container.create_container(key, metadata={"scan": key, "peak": peak})
        scan.write_array(image, key="image", dims=["y", "x"])
        peaks[key] = peak
    return peaks


def run(uri: str, api_key: str | None, *, n_scans: int = 3, say=print) -> dict:
    """Simulate scans, let the sensor find them, materialise each partition, then the summary.

    Everything goes under a fresh container on the server. Returns a summary
    dict; raises if a run or a check fails or the table is not what was expected.
    """
    from tiled_core.client import from_uri

    prefix = f"dagster-example-{datetime.datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    raw_path = f"{prefix}/raw"
    tiled = TiledResource(uri=uri, api_key=api_key, base_path=f"{prefix}/assets")
    definitions = build_definitions(raw_path, tiled)
    resources = {"tiled": tiled, "io_manager": TiledIOManager(tiled=tiled)}
    run_config = {"ops": {"raw_scan": {"config": {"raw_path": raw_path}}}}
    instance = DagsterInstance.ephemeral()
    client = from_uri(uri, api_key=api_key)
    try:
        peaks = simulate_instrument(client, raw_path, [f"scan{i:03d}" for i in range(n_scans)])
        say(f"the instrument wrote {n_scans} scans under {raw_path}")

        sensor = definitions.get_sensor_def("new_scans")
        with build_sensor_context(instance=instance, resources={"tiled": tiled}) as context:
            tick = sensor(context)
        for request in tick.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        say(f"sensor: {len(tick.run_requests)} new scans -> partitions {[r.partition_key for r in tick.run_requests]}")

        for request in tick.run_requests:
            _materialize([raw_scan, reduced_scan, CHECKS[0]], resources, instance,
                         partition_key=request.partition_key, run_config=run_config)
        say(f"materialised raw_scan and reduced_scan for {len(tick.run_requests)} partitions")
        _materialize([*ASSETS, CHECKS[1]], resources, instance, selection=[scan_summary, CHECKS[1]])

        table = client[f"{prefix}/assets/scan_summary"].read()
        found = dict(zip(table["scan"], table["peak_position"]))
        if found != peaks:
            raise RuntimeError(f"summary peaks {found} differ from the simulated ones {peaks}")
        say(f"summary table {prefix}/assets/scan_summary: {len(table)} rows, peaks where the instrument put them")
        return {"container": prefix, "scans": len(table), "peaks": found}
    finally:
        client.context.close()


def _materialize(assets, resources, instance, **kwargs) -> None:
    result = materialize(assets, resources=resources, instance=instance, raise_on_error=False, **kwargs)
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    if not result.success or failed:
        raise RuntimeError(f"dagster run {result.run_id} failed: {[e.check_name for e in failed] or 'see its logs'}")
