"""The Dagster UI beside the Tiled server, as the README runs it: ``python -m example_flows --dagster-ui``.

One real ``dagster dev`` (webserver and daemon) on a loopback port, in the
same environment as the Tiled server, against the session's real Tiled
server; its GraphQL endpoint must list the example's assets and show a
materialisation whose metadata links to the Tiled node. Ctrl-C (SIGINT) must
stop it all and remove the temporary DAGSTER_HOME it made.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tiled_core.client import from_uri

ROOT = Path(__file__).resolve().parents[1]

ASSETS_QUERY = "{ assetNodes { assetKey { path } } }"
MATERIALIZATIONS_QUERY = """
{ assetOrError(assetKey: {path: ["reduced_scan"]}) {
    ... on Asset { assetMaterializations(limit: 10) {
        partition runId
        metadataEntries { label ... on UrlMetadataEntry { url } ... on TextMetadataEntry { text } } } } } }
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    response = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": query}, timeout=30)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def test_the_dagster_ui_command_serves_the_example_beside_the_tiled_server(tiled_server, tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "TILED_URI")}
    env.update(TILED_API_KEY=tiled_server.api_key,
               PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "integrations"), env.get("PYTHONPATH", "")]))
    log = tmp_path / "ui.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "example_flows", "--dagster-ui", "--port", str(port), "--scans", "2",
             "--tiled-uri", tiled_server.uri],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            # As at a terminal: a test process may ignore SIGINT, and an ignored SIGINT is inherited
            # (Python then installs no KeyboardInterrupt handler), so Ctrl-C would never arrive.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        deadline = time.monotonic() + 240
        while True:
            assert process.poll() is None, f"the UI command exited early:\n{log.read_text()[-3000:]}"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=5).status_code == 200:
                    assets = _graphql(port, ASSETS_QUERY)["assetNodes"]
                    if assets:
                        break
            except (httpx.TransportError, httpx.HTTPStatusError):
                pass
            assert time.monotonic() < deadline, f"no Dagster UI on port {port}:\n{log.read_text()[-3000:]}"
            time.sleep(1)
        assert {tuple(a["assetKey"]["path"]) for a in assets} >= {("raw_scan",), ("reduced_scan",), ("scan_summary",)}

        data = _graphql(port, MATERIALIZATIONS_QUERY)
        materializations = data["assetOrError"]["assetMaterializations"]
        assert [m["partition"] for m in materializations] == ["scan000"]
        entries = {e["label"]: e for e in materializations[0]["metadataEntries"]}
        link = entries["tiled_url"]["url"]
        assert link.startswith(tiled_server.uri.split("/api/")[0]) and link.endswith("/dagster-example/reduced_scan/scan000")
        node = from_uri(link, api_key=tiled_server.api_key)  # the link is the node the UI points to
        try:
            assert node.read().shape == (64,) and node.metadata["dagster"]["partition"] == "scan000"
        finally:
            node.context.close()

        run = _graphql(port, '{ runOrError(runId: "%s") { ... on Run { runConfigYaml status } } }'
                       % materializations[0]["runId"])["runOrError"]
        assert run["status"] == "SUCCESS"
        assert tiled_server.api_key not in json.dumps(data) + json.dumps(run)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C at a terminal goes to the whole group
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            pytest.fail(f"the UI command did not stop on Ctrl-C:\n{log.read_text()[-3000:]}")
    output = log.read_text()
    assert process.returncode == 0, output[-3000:]
    assert tiled_server.api_key not in output
    home = re.search(r"using a temporary one, (\S+) \(removed on exit\)", output).group(1)
    assert not Path(home).exists()
    assert f"http://127.0.0.1:{port}" in output
