"""The main job runs: against the session server, and as the README's command with its own server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from example_flows import scans


def test_scans_story_against_running_server(tiled_server):
    lines: list[str] = []
    summary = scans.run(tiled_server.uri, tiled_server.api_key, n_scans=4, say=lines.append)
    assert summary["scans"] == 4
    assert summary["copper"] == ["scan000", "scan003"]
    assert summary["copper_above_300K"] == ["scan003"]
    assert any("identical" in line for line in lines)
    assert not any(tiled_server.api_key in line for line in lines)


def test_main_job_runs_the_whole_story_on_embedded_servers():
    # A newcomer's environment: no telemetry variables either (the job turns telemetry off itself).
    env = {k: v for k, v in os.environ.items() if k not in (
        "TILED_URI", "TILED_API_KEY", "PREFECT_API_URL", "DO_NOT_TRACK", "PREFECT_SERVER_ANALYTICS_ENABLED",
        "DAGSTER_DISABLE_TELEMETRY", "PREFECT_LOGGING_LEVEL")}
    result = subprocess.run(
        [sys.executable, "-m", "example_flows", "--scans", "2"],
        cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout[result.stdout.rindex("\n{") + 1:])
    assert summary["scans"]["count"] == 2
    assert summary["prefect"]["reduced"] == 2
    assert summary["dagster"]["partitions"] == 2
    assert summary["copy"]["nodes"] == 2 * 3  # two scans, each a container with an image and a profile
    assert summary["copy"]["bytes"] > 2 * 64 * 128 * 8
    assert summary["facility"] != summary["analysis"]
    # Quiet by default: a line per stage and the summary, none of the orchestrators' chatter.
    output = result.stdout + result.stderr
    for noise in ("DEBUG", "INFO", "Traceback", "telemetry", "UserWarning", "distributed.", "anonymous usage"):
        assert noise not in output, f"{noise!r} in the main job's output:\n{output[-3000:]}"
    assert len(output.splitlines()) < 80, output
    assert "starting 2 embedded Tiled servers" in output and ": done in" in output
    assert "KiB" in summary["copy"]["text"] and f"{summary['copy']['nodes']} nodes" in summary["copy"]["text"]


def test_main_job_explains_itself():
    result = subprocess.run([sys.executable, "-m", "example_flows", "--help"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1], timeout=60)
    assert result.returncode == 0
    for option in ("--tiled-uri", "--api-key", "--analysis-uri", "--workers", "TILED_URI", "--verbose",
                   "--dagster-ui", "progress bar"):
        assert option in result.stdout


def test_serve_prefect_deployments_carry_no_secret():
    from datetime import timedelta

    from example_flows.serve_prefect import build_deployments

    deployments = build_deployments("tiled", "scans", timedelta(minutes=10))
    assert [d.name for d in deployments] == ["reduce-new-scans", "nightly-mirror"]
    for deployment in deployments:
        assert all(isinstance(v, str) for v in deployment.parameters.values())  # block names and paths only
