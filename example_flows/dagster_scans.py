"""Dagster example: raw scans -> reduced arrays -> summary table, one partition per scan.

An instrument writes each scan into the Tiled container ``RAW_PATH`` (here,
``simulate_instrument`` plays that part). The ``new_scans`` sensor adds every
new scan as a partition of ``scans`` and requests a run of ``raw_scan`` and
``reduced_scan`` for it; ``scan_summary`` gathers every reduced scan into a
table. All asset values live in Tiled, under ``BASE_PATH``, through
``TiledIOManager``; asset checks verify what was stored.

In the Dagster UI, against an embedded Tiled server with example scans, one
command (a temporary ``DAGSTER_HOME``; Ctrl-C stops everything)::

    python -m example_flows --dagster-ui            # then open http://127.0.0.1:3000

or against a server of yours (``TILED_URI`` is required; ``TILED_API_KEY`` if it has a key)::

    TILED_URI=http://127.0.0.1:8000/api/v1 TILED_API_KEY=... dagster dev -m example_flows.dagster_scans

From a shell, without the UI: the ``scans`` partitions are dynamic (the
``new_scans`` sensor adds them), so add them first, in a ``DAGSTER_HOME`` the
later commands share::

    export DAGSTER_HOME=~/dagster-home TILED_URI=... TILED_API_KEY=...
    python -m example_flows.dagster_scans simulate         # write example scans under RAW_PATH
    python -m example_flows.dagster_scans add-partitions   # one partition per scan found there
    dagster asset materialize -m example_flows.dagster_scans --select raw_scan,reduced_scan --partition scan000

From code (what ``python -m example_flows`` and the tests do): ``run(uri, api_key)``.
"""

# No `from __future__ import annotations`: Dagster reads the asset functions' annotations at runtime.

import argparse
import datetime
import os
import sys
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
    definitions,
    materialize,
)

from dagster_tiled import TiledIOManager, TiledResource, tiled_asset_check, tiled_sensor

RAW_PATH = "instrument/scans"
BASE_PATH = "dagster-example"
IMAGE_SHAPE = (32, 64)
MISSING_URI = ("example_flows.dagster_scans: set TILED_URI to the Tiled server's API, e.g. "
               "TILED_URI=http://127.0.0.1:8000/api/v1 (and TILED_API_KEY if it has a key); "
               "or run `python -m example_flows --dagster-ui`, which starts a server for you")
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


@definitions
def defs() -> Definitions:
    """What ``dagster dev -m example_flows.dagster_scans`` loads; needs ``TILED_URI`` (one line if missing)."""
    if not os.environ.get("TILED_URI"):
        raise SystemExit(MISSING_URI)  # not an Exception: Dagster prints it as it is, without a traceback
    return build_definitions()


def simulate_instrument(client, raw_path: str, keys: list[str], *, seed: int = 0) -> dict[str, int]:
    """Write one scan per key (an image with a peak) into ``raw_path``; return each peak's column.

    Scans that exist already are kept (their peak is read from their metadata): reruns are safe.
    """
    container = client
    for part in raw_path.split("/"):
        container = container.create_container(part, on_conflict="skip")
    rng = np.random.default_rng(seed)
    peaks = {}
    for key in keys:
        peak = int(rng.integers(8, IMAGE_SHAPE[1] - 8))
        image = rng.poisson(5.0, IMAGE_SHAPE).astype("float64")
        image[:, peak] += 50.0
        scan = container.create_container(key, metadata={"scan": key, "peak": peak}, on_conflict="skip")
        if "image" not in scan:
            scan.write_array(image, key="image", dims=["y", "x"])
        peaks[key] = int(scan.metadata["peak"])
    return peaks


def add_partitions(instance, keys: list[str]) -> list[str]:
    """Add ``keys`` to the ``scans`` partitions of ``instance`` (what the sensor does); returns the new ones."""
    new = [key for key in keys if not instance.has_dynamic_partition(scans.name, key)]
    if new:
        instance.add_dynamic_partitions(scans.name, new)
    return new


def quiet_run_config(log_level: str = "WARNING") -> dict:
    """Run config that sets Dagster's console logger of an in-process run (its default is DEBUG)."""
    return {"loggers": {"console": {"config": {"log_level": log_level}}}}


def prepare_ui(uri: str, api_key: str | None, instance, *, n_scans: int = 3, log_level: str = "WARNING",
               say=print) -> dict:
    """Make the UI worth opening: example scans under ``RAW_PATH``, their partitions, one materialised.

    What ``python -m example_flows --dagster-ui`` does before it starts ``dagster dev`` on ``instance``.
    """
    from tiled_core.client import from_uri

    client = from_uri(uri, api_key=api_key)
    try:
        keys = sorted(simulate_instrument(client, RAW_PATH, [f"scan{i:03d}" for i in range(n_scans)]))
    finally:
        client.context.close()
    add_partitions(instance, keys)
    say(f"{len(keys)} example scans under {RAW_PATH}, each a partition of raw_scan and reduced_scan")
    tiled = TiledResource(uri=uri, api_key=api_key, base_path=BASE_PATH)
    resources = {"tiled": tiled, "io_manager": TiledIOManager(tiled=tiled)}
    _materialize([raw_scan, reduced_scan, CHECKS[0]], resources, instance, partition_key=keys[0],
                 run_config=quiet_run_config(log_level))
    say(f"materialised partition {keys[0]}; materialise the others from the UI")
    return {"partitions": keys, "materialized": keys[0]}


def run(uri: str, api_key: str | None, *, n_scans: int = 3, log_level: str = "DEBUG", say=print) -> dict:
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
    run_config = {"ops": {"raw_scan": {"config": {"raw_path": raw_path}}}, **quiet_run_config(log_level)}
    instance = DagsterInstance.ephemeral()
    client = from_uri(uri, api_key=api_key)
    try:
        peaks = simulate_instrument(client, raw_path, [f"scan{i:03d}" for i in range(n_scans)])
        say(f"the instrument wrote {n_scans} scans under {raw_path}")

        sensor = definitions.resolve_sensor_def("new_scans")
        with build_sensor_context(instance=instance, resources={"tiled": tiled}) as context:
            tick = sensor(context)
        for request in tick.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        say(f"sensor: {len(tick.run_requests)} new scans -> partitions {[r.partition_key for r in tick.run_requests]}")

        for request in tick.run_requests:
            _materialize([raw_scan, reduced_scan, CHECKS[0]], resources, instance,
                         partition_key=request.partition_key, run_config=run_config)
        say(f"materialised raw_scan and reduced_scan for {len(tick.run_requests)} partitions")
        _materialize([*ASSETS, CHECKS[1]], resources, instance, selection=[scan_summary, CHECKS[1]],
                     run_config=quiet_run_config(log_level))

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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m example_flows.dagster_scans",
        description="Prepare the example for Dagster's own commands (dagster asset materialize, dagster dev). "
                    "Needs TILED_URI (and TILED_API_KEY if the server has a key); add-partitions needs DAGSTER_HOME.")
    commands = parser.add_subparsers(dest="command", required=True)
    simulate = commands.add_parser("simulate", help=f"write example scans under {RAW_PATH} (existing ones are kept)")
    simulate.add_argument("--scans", type=int, default=3, help="how many (default 3)")
    add = commands.add_parser("add-partitions", help="add scans as partitions in the DAGSTER_HOME instance")
    add.add_argument("keys", nargs="*", metavar="KEY", help=f"partition keys (default: every scan under {RAW_PATH})")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The shell commands of this example (see the module docstring); returns the exit status."""
    args = _parser().parse_args(argv)
    uri, api_key = os.environ.get("TILED_URI"), os.environ.get("TILED_API_KEY")
    if not uri and not (args.command == "add-partitions" and args.keys):
        print(MISSING_URI, file=sys.stderr)
        return 2
    if args.command == "simulate":
        from tiled_core.client import from_uri

        client = from_uri(uri, api_key=api_key)
        try:
            peaks = simulate_instrument(client, RAW_PATH, [f"scan{i:03d}" for i in range(args.scans)])
        finally:
            client.context.close()
        print(f"{len(peaks)} scans under {RAW_PATH}: {', '.join(sorted(peaks))}")
        return 0
    if not os.environ.get("DAGSTER_HOME"):
        print("example_flows.dagster_scans: set DAGSTER_HOME to a directory; it keeps the partitions for the "
              "dagster commands that follow (export it in the same shell)", file=sys.stderr)
        return 2
    keys = args.keys
    if not keys:
        from tiled_core.client import from_uri

        client = from_uri(uri, api_key=api_key)
        try:
            keys = sorted(client[RAW_PATH])
        except KeyError:
            keys = []
        finally:
            client.context.close()
        if not keys:
            print(f"example_flows.dagster_scans: no scans under {RAW_PATH} on {uri}; write some with "
                  "`python -m example_flows.dagster_scans simulate`", file=sys.stderr)
            return 1
    new = add_partitions(DagsterInstance.get(), keys)
    print(f"partitions of scans: {len(keys)} ({len(new)} new): {', '.join(keys)}")
    print(f"next: dagster asset materialize -m example_flows.dagster_scans --select raw_scan,reduced_scan "
          f"--partition {keys[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
