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


def test_main_job_with_embedded_server():
    env = {k: v for k, v in os.environ.items() if k not in ("TILED_URI", "TILED_API_KEY")}
    result = subprocess.run(
        [sys.executable, "-m", "example_flows", "--scans", "3"],
        cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "embedded server stopped" in result.stdout
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert summary["scans"] == 3 and summary["copper"] == ["scan000"]
