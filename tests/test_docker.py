"""docker/: what can be checked without a Docker engine (none runs on these machines).

compose.yaml parses; every service builds from docker/Dockerfile; every
command names a program or module this project installs, and that program
answers ``--help`` here; every environment variable is documented; the image
runs as a non-root user from a pinned base and bakes in no secret.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

DOCKER = Path(__file__).resolve().parent.parent / "docker"
COMPOSE = yaml.safe_load((DOCKER / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (DOCKER / "Dockerfile").read_text()
README = (DOCKER / "README.md").read_text()

# How much of each command is a program's sub-command path (then --help is appended).
SUBCOMMAND_DEPTH = {"tiled": 3, "dask": 2, "prefect": 3, "dagster-daemon": 2, "dagster-webserver": 1}


def _bin(name: str) -> str:
    found = shutil.which(name, path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    assert found, f"{name} is not installed by this project"
    return found


def test_the_expected_services_are_there():
    assert {"tiled", "dask-scheduler", "dask-worker", "prefect-server", "prefect-worker",
            "dagster-webserver", "dagster-daemon"} <= set(SERVICES)
    assert SERVICES["dask-worker"]["deploy"]["replicas"] == 2


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_builds_from_the_dockerfile_and_has_a_healthcheck(name):
    service = SERVICES[name]
    assert service["build"]["dockerfile"] == "docker/Dockerfile"
    assert (DOCKER / service["build"]["context"] / service["build"]["dockerfile"]).resolve() == DOCKER / "Dockerfile"
    assert service["image"] == "tiled-core:latest"
    assert service["healthcheck"]["test"][0] == "CMD"
    for published in service.get("ports", []):
        assert published.startswith("127.0.0.1:"), f"{name} publishes {published} beyond loopback"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_command_exists_here_and_answers_help(name):
    command = SERVICES[name]["command"]
    program = command[0]
    if program == "python":
        assert command[1] == "-m"
        module = command[2]
        assert importlib.util.find_spec(module) is not None, f"{name}: module {module} does not exist"
        argv = [sys.executable, "-m", module, "--help"]
    else:
        argv = [_bin(program), *command[1:SUBCOMMAND_DEPTH[program]], "--help"]
    env = {**os.environ, "DO_NOT_TRACK": "1", "TILED_URI": "http://127.0.0.1:9/api/v1", "TILED_API_KEY": "unused"}
    result = subprocess.run(argv, capture_output=True, text=True, timeout=180, env=env, cwd=DOCKER.parent)
    assert result.returncode == 0, f"{' '.join(argv)} failed:\n{result.stderr[-2000:]}"
    output = (result.stdout + result.stderr).lower()
    assert "usage" in output or "validation successful" in output


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_healthcheck_programs_exist(name):
    test = SERVICES[name]["healthcheck"]["test"]
    if test[1] == "python":
        compile(test[3], f"{name} healthcheck", "exec")
    else:
        _bin(test[1])


def _variables() -> set[str]:
    names: set[str] = set()
    for service in SERVICES.values():
        names |= set(service.get("environment") or {})
    text = (DOCKER / "compose.yaml").read_text() + DOCKERFILE + (DOCKER / "entrypoint.sh").read_text()
    names |= set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text))
    names |= set(re.findall(r"^\s*(?:ENV|ARG)\s+([A-Z_][A-Z0-9_]*)", DOCKERFILE, flags=re.M))
    names |= set(re.findall(r"^\s+([A-Z_][A-Z0-9_]*)=", DOCKERFILE, flags=re.M))  # continued ENV lines
    return names


def test_every_environment_variable_is_documented():
    names = _variables()
    assert {"TILED_URI", "TILED_API_KEY", "DASK_SCHEDULER_ADDRESS"} <= names
    missing = sorted(n for n in names if f"`{n}`" not in README)
    assert not missing, f"undocumented in docker/README.md: {missing}"


def test_the_image_is_multistage_pinned_non_root_and_secret_free():
    assert len(re.findall(r"^FROM ", DOCKERFILE, flags=re.M)) >= 2
    base = re.search(r"ARG PYTHON_IMAGE=(\S+)", DOCKERFILE).group(1)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base), base
    assert re.search(r"^USER tiled$", DOCKERFILE, flags=re.M)
    # One environment: the `all` extra holds the Dagster UI beside the Tiled server.
    assert DOCKERFILE.count("python -m venv") == 1 and "/opt/dagster-ui" not in DOCKERFILE
    assert '".[all]"' in DOCKERFILE
    assert "API_KEY" not in "".join(line for line in DOCKERFILE.splitlines() if line.startswith(("ENV", "ARG")))
    for source in re.findall(r"^COPY (?!--from)(?:--\S+ )*(\S+)", DOCKERFILE, flags=re.M):
        assert (DOCKER.parent / source).exists(), f"Dockerfile copies {source}, which does not exist"
    secret_file = COMPOSE["secrets"]["tiled_api_key"]["file"]
    assert (DOCKER / ".gitignore").read_text().split() == ["secrets/"]
    assert secret_file.startswith("./secrets/")


def test_the_entrypoint_turns_the_key_into_the_servers_variable():
    result = subprocess.run(["sh", str(DOCKER / "entrypoint.sh"), "sh", "-c", "echo $TILED_SINGLE_USER_API_KEY"],
                            capture_output=True, text=True, env={"PATH": os.environ["PATH"], "TILED_API_KEY": "k-123"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "k-123"


def test_the_dagster_volume_mount_point_exists_in_the_image_owned_by_tiled():
    """A fresh named volume copies its mount point's owner from the image: it must be the tiled user."""
    mounts = {volume.split(":", 1)[1] for name in ("dagster-webserver", "dagster-daemon")
              for volume in SERVICES[name]["volumes"] if volume.startswith("dagster-data:")}
    assert mounts == {"/home/tiled/dagster/storage"}
    made = re.search(r"mkdir -p ([^\n&]+)", DOCKERFILE).group(1).split()
    assert "/home/tiled/dagster/storage" in made
    owned = re.search(r"chown -R tiled:tiled ([^\n&]+)", DOCKERFILE).group(1).split()
    assert any("/home/tiled/dagster/storage".startswith(path) for path in owned)
    storage = yaml.safe_load((DOCKER / "dagster.yaml").read_text())["storage"]["sqlite"]["base_dir"]
    assert storage == "/home/tiled/dagster/storage"


def test_every_program_the_services_run_is_in_the_one_environment():
    """dagster-webserver and the Tiled server come from the same installed environment (no second venv)."""
    bindir = Path(sys.executable).parent
    for name in ("tiled", "dagster-webserver", "dagster-daemon", "dask", "prefect"):
        assert (bindir / name).exists(), f"{name} is not in {bindir}"
    for service in SERVICES.values():
        assert not service["command"][0].startswith("/"), service["command"]
