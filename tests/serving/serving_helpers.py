"""Helpers for the serving tests: a real uvicorn server in a subprocess, tokens, tiny VLA artifacts."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx

from data_store.registry import Registry, tokens
from data_store.schema import RobotSpec

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
SIM_SPEC = RobotSpec(
    action_dim=4, state_dim=4, action_low=(-1.0,) * 4, action_high=(1.0,) * 4, cameras={"corner": (64, 64)}
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    data_dir: Path
    admin: str
    operator: str
    viewer: str
    log: Path
    env: dict[str, str]
    trainer: str = ""  # the trainer's token (bound to "trainer": writes training runs)

    def client(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def server_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_REGISTRY")}
    return {**env, "FLYWHEEL_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT), **extra}


def start_server(data_dir: Path, *, registry_url: str = "", schema: str = "", **extra_env: str) -> Server:
    """Tokens are created in the registry first (as ``flywheel serve token create`` does), then the
    server starts as its own process: ``python -m uvicorn serving.app:create_app --factory``.
    SQLite under ``data_dir`` unless ``registry_url`` (and ``schema``) name another database."""
    data_dir.mkdir(parents=True, exist_ok=True)
    url = registry_url or f"sqlite:///{data_dir / 'registry' / 'registry.db'}"
    registry = Registry(url, data_dir / "registry" / "artifacts", schema=schema or None)
    with registry.session() as s:
        made = {role: tokens.create_token(s, role, name=f"test-{role}")[0] for role in tokens.ROLES}
        made["trainer"] = tokens.create_token(s, "operator", name="test-trainer", bound_to=tokens.TRAINER)[0]
    registry.close()
    port = free_port()
    env = {"FLYWHEEL_REGISTRY_URL": url, "FLYWHEEL_REGISTRY_SCHEMA": schema, **extra_env}
    server = Server(f"http://127.0.0.1:{port}", launch(data_dir, port, **env), data_dir, made["admin"],
                    made["operator"], made["viewer"], data_dir / f"server-{port}.log", env,
                    made["trainer"])  # fmt: skip
    wait_healthy(server)
    return server


def restart(server: Server) -> None:
    """Start the server again on its port and database (after ``stop``): tokens and state persist."""
    server.proc = launch(server.data_dir, int(server.url.rsplit(":", 1)[1]), **server.env)
    wait_healthy(server)


def launch(data_dir: Path, port: int, **env: str) -> subprocess.Popen[bytes]:
    log = data_dir / f"server-{port}.log"
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "serving.app:create_app", "--factory", "--port", str(port),
         "--log-level", "warning"],
        env=server_env(data_dir, **env),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )  # fmt: skip


def wait_healthy(server: Server, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"the server exited ({server.proc.returncode}):\n{server.log.read_text()[-3000:]}")
        try:
            if httpx.get(server.url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server did not become healthy in {timeout_s} s:\n{server.log.read_text()[-3000:]}")


def make_artifact(
    folder: Path,
    seed: int,
    *,
    action_dim: int = 4,
    parent: str | None = None,
    nan_actions: bool = False,
    metrics: dict[str, float] | None = None,
) -> str:
    """A real tiny ``VLAPolicy`` saved with ``vla.artifact.save_artifact``; returns its version.

    ``nan_actions``: the action tokenizer's lower bounds are NaN (and the manifest re-hashed, so the
    artifact verifies): every decoded action is NaN, which only the health probe can catch."""
    import torch

    from vla.artifact import save_artifact
    from vla.manifest import MANIFEST, write_manifest
    from vla.model import VLAConfig, VLAPolicy
    from vla.norm_stats import NormStats

    spec = RobotSpec(
        action_dim=action_dim,
        state_dim=SIM_SPEC.state_dim,
        action_low=(-1.0,) * action_dim,
        action_high=(1.0,) * action_dim,
        cameras=SIM_SPEC.cameras,
    )
    torch.manual_seed(seed)
    config = VLAConfig.preset("tiny", action_dim=action_dim, state_dim=spec.state_dim)
    policy = VLAPolicy(config, NormStats.from_spec(spec), spec, load_pretrained_vision=False)
    version = save_artifact(policy, folder, parent_version=parent, training_run=f"test-{seed}", metrics=metrics)
    if nan_actions:
        stats = json.loads((folder / "norm_stats.json").read_text())
        stats["tokenizer"]["low"] = [float("nan")] * action_dim
        (folder / "norm_stats.json").write_text(json.dumps(stats))
        manifest = json.loads((folder / MANIFEST).read_text())
        (folder / MANIFEST).unlink()
        version = write_manifest(
            folder,
            parent_version=parent,
            training_run=manifest["training_run"],
            dataset_snapshot=None,
            metrics=manifest["metrics"],
            robot_spec=manifest["robot_spec"],
            created_at=manifest["created_at"],
        )["version"]
    return version


def tarball(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for f in sorted(folder.iterdir()):
            tar.add(f, arcname=f.name)
    return buf.getvalue()


def upload(client: httpx.Client, folder: Path) -> httpx.Response:
    return client.post("/policies", files={"file": ("a.tar.gz", tarball(folder), "application/gzip")})


def start_agent(
    server: Server, robot_id: str, cache: Path, *switches: str, max_steps: int = 12, poll_s: float = 0.2, **flags: str
) -> subprocess.Popen[bytes]:
    """The simulated robot agent as its own process: ``python -m robot_agent.sync``."""
    args = [sys.executable, "-m", "robot_agent.sync", "--server", server.url, "--robot-id", robot_id,
            "--cache", str(cache), "--max-steps", str(max_steps), "--poll-s", str(poll_s)]  # fmt: skip
    for k, v in flags.items():
        args += [f"--{k.replace('_', '-')}", v]
    args += list(switches)  # e.g. "--remote"
    env = server_env(server.data_dir, FLYWHEEL_TOKEN=server.operator, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"))
    log = cache.parent / f"agent-{robot_id}.log"
    return subprocess.Popen(args, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=ROOT)


def wait_until(what: str, predicate: Callable[[], T | None], timeout_s: float = 60.0, every_s: float = 0.1) -> T:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
