"""The tiled-core command line against real servers: copy, ls, search; keys only from the environment."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from tiled_core.cli import main
from tiled_core.client import from_uri

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tree(tiled_server):
    """``<name>/{a, b, sub/c}`` with metadata ``group`` on a, b and sub."""
    client = from_uri(tiled_server.uri, api_key=tiled_server.api_key)
    parent = client.create_container(f"cli-{uuid.uuid4().hex[:8]}")
    parent.write_array(np.arange(10), key="a", metadata={"group": 1})
    parent.write_array(np.ones((3, 4)), key="b", metadata={"group": 2, "tag": "x"})
    sub = parent.create_container("sub", metadata={"group": 1})
    sub.write_array(np.arange(6.0), key="c")
    yield f"{tiled_server.uri}/metadata/{parent.path}"
    client.context.close()


@pytest.fixture
def keys(monkeypatch, tiled_server, second_server):
    monkeypatch.delenv("TILED_API_KEY", raising=False)
    monkeypatch.setenv("TILED_SOURCE_API_KEY", tiled_server.api_key)
    monkeypatch.setenv("TILED_DEST_API_KEY", second_server.api_key)


@pytest.fixture
def dest_uri(second_server):
    client = from_uri(second_server.uri, api_key=second_server.api_key)
    node = client.create_container(f"cli-dst-{uuid.uuid4().hex[:8]}")
    yield f"{second_server.uri}/metadata/{node.path}"
    client.context.close()


def test_copy_then_rerun(tree, dest_uri, keys, second_server, capsys):
    assert main(["copy", tree, dest_uri, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "copied 4 nodes" in out and "failed 0" in out
    dest = from_uri(dest_uri, api_key=second_server.api_key)
    try:
        assert list(dest) == ["a", "b", "sub"]
        np.testing.assert_array_equal(dest["sub"]["c"].read(), np.arange(6.0))
        assert dest["b"].metadata["tag"] == "x"
    finally:
        dest.context.close()
    assert main(["copy", tree, dest_uri, "--on-conflict", "skip", "--no-progress"]) == 0
    assert "copied 0 nodes" in capsys.readouterr().out
    assert main(["copy", tree, dest_uri, "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "already exists" in err and "--on-conflict skip" in err
    assert "on_conflict=" not in err  # the shell's spelling, not Python's


def test_copy_create_makes_a_missing_destination(tree, keys, second_server, capsys):
    missing = f"{second_server.uri}/metadata/cli-new-{uuid.uuid4().hex[:8]}/mirror"
    assert main(["copy", tree, missing, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "--create" in err
    assert main(["copy", tree, missing, "--create", "--no-progress"]) == 0
    assert "copied 4 nodes" in capsys.readouterr().out
    dest = from_uri(missing, api_key=second_server.api_key)
    try:
        assert dest.structure_family == "container" and list(dest) == ["a", "b", "sub"]
    finally:
        dest.context.close()
    assert main(["copy", tree, missing, "--create", "--on-conflict", "skip", "--no-progress"]) == 0  # exists: kept
    assert "copied 0 nodes" in capsys.readouterr().out


def test_no_key_sent_says_so_and_how_to_send_one(tree, monkeypatch, tiled_server, capsys):
    for name in ("TILED_API_KEY", "TILED_SOURCE_API_KEY", "TILED_DEST_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert main(["ls", tree]) == 1
    err = capsys.readouterr().err
    assert "none were sent" in err and "TILED_API_KEY" in err
    assert "rejected" not in err and "api_key=" not in err
    assert len(err.strip().splitlines()) == 1
    monkeypatch.setenv("TILED_API_KEY", "not-the-key")
    assert main(["ls", tree]) == 1
    err = capsys.readouterr().err
    assert "rejected" in err and "wrong" in err and "api_key=" not in err
    assert "not-the-key" not in err


def test_the_copy_bar_never_shows_a_percentage_of_a_growing_total(capsys):
    from tiled_core.copy._progress import CopyProgress, make_reporter

    reporter = make_reporter(True)
    for found in (1, 5, 20):  # the walk finds more nodes and bytes as it goes
        reporter.update(CopyProgress(nodes_done=found - 1, nodes_found=found, bytes_done=1000 * found,
                                     bytes_found=4000 * found, skipped=0, failed=0, seconds=1.0), final=True)
    reporter.close()
    err = capsys.readouterr().err
    assert "19/20 nodes" in err and "KB" in err.upper()
    assert "%" not in err


def test_copy_on_local_workers(tree, dest_uri, keys, second_server, capsys):
    assert main(["copy", tree, dest_uri, "--workers", "1", "--no-progress"]) == 0
    assert "copied 4 nodes" in capsys.readouterr().out
    dest = from_uri(dest_uri, api_key=second_server.api_key)
    try:
        np.testing.assert_array_equal(dest["b"].read(), np.ones((3, 4)))
    finally:
        dest.context.close()


def test_ls_and_search(tree, monkeypatch, tiled_server, capsys):
    monkeypatch.setenv("TILED_API_KEY", tiled_server.api_key)
    assert main(["ls", tree]) == 0
    assert capsys.readouterr().out.split() == ["a", "b", "sub"]
    assert main(["ls", "-l", tree]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "b\tarray\t(3, 4)" and lines[2] == "sub\tcontainer"
    assert main(["search", tree, "group=1"]) == 0
    assert capsys.readouterr().out.split() == ["a", "sub"]
    assert main(["search", tree, "group=2", "tag=x"]) == 0
    assert capsys.readouterr().out.split() == ["b"]


def test_bad_usage_and_errors(tree, monkeypatch, tiled_server, capsys):
    monkeypatch.setenv("TILED_API_KEY", tiled_server.api_key)
    assert main(["search", tree, "group"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert main(["ls", f"{tree}/a"]) == 2
    assert "not a container" in capsys.readouterr().err
    assert main(["ls", f"{tree}/missing"]) == 1
    assert "not found" in capsys.readouterr().err
    assert main(["copy", tree, tree, "--concurrency", "0"]) == 2
    with pytest.raises(SystemExit):
        main(["copy", tree])


def test_keys_are_never_taken_from_argv(tree, tiled_server, capsys):
    assert main(["ls", f"{tree}?api_key={tiled_server.api_key}"]) == 2
    captured = capsys.readouterr()
    assert "do not put API keys in URIs" in captured.err
    assert tiled_server.api_key not in captured.out + captured.err


def test_module_entry_point(tree, tiled_server):
    env = {**os.environ, "TILED_API_KEY": tiled_server.api_key,
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "tiled_core.cli", "ls", tree], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["a", "b", "sub"]
    assert tiled_server.api_key not in done.stdout + done.stderr
    helped = subprocess.run([sys.executable, "-m", "tiled_core.cli", "--help"], capture_output=True, text=True,
                            env=env, timeout=120)
    assert "copy" in helped.stdout and "TILED_SOURCE_API_KEY" in helped.stdout
