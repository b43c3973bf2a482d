"""What the trainer-service tests share: episodes in a real store, a policy artifact, worker processes.

Workers are real ``flywheel worker`` processes in their own process group, so killing one kills the
whole group (the Celery main process and anything it started); the ``workers`` fixture kills every
group it started, whatever the test did.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file

from data_store.episodes import EpisodeStore
from data_store.schema import Observation, RobotSpec
from trainer.service.settings import ServiceSettings

REPO = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
TASK = "drawer-close"


def tiny_spec(action_dim: int = 4, size: int = 8) -> RobotSpec:
    return RobotSpec(
        action_dim=action_dim,
        state_dim=4,
        action_low=(-1.0,) * action_dim,
        action_high=(1.0,) * action_dim,
        cameras={"corner": (size, size)},
    )


def record_episodes(
    store_root: Path, n: int, *, action_dim: int = 4, steps: int = 6, seed: int = 0, task: str = TASK, size: int = 8
) -> list[str]:
    """``n`` complete episodes whose state moves by 0.1 × the action's first 4 dims; every other one succeeds."""
    store, spec, rng = EpisodeStore(store_root), tiny_spec(action_dim, size), np.random.default_rng(seed)
    ids = []
    for i in range(n):
        with store.create(spec, task=task, instruction="close the drawer") as w:
            state = rng.uniform(-1, 1, 4).astype(np.float32)
            for t in range(steps):
                action = rng.uniform(-1, 1, action_dim).astype(np.float32)
                image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                w.append(Observation({"corner": image}, state.copy(), "close the drawer", t / 10), action)
                state = (state + 0.1 * action[:4]).astype(np.float32)
            w.finish(success=i % 2 == 0)
            ids.append(w.episode_id)
    return ids


def make_policy_artifact(directory: Path, action_dim: int = 4) -> Path:
    """A policy artifact as the registry and ``vla.manifest`` see it: payload files plus a verified manifest."""
    from vla.manifest import write_manifest

    directory.mkdir(parents=True)
    rng = np.random.default_rng(action_dim)
    weights = {"head.weight": rng.standard_normal((action_dim, 8)).astype(np.float32)}
    save_file(weights, str(directory / "model.safetensors"))
    spec = tiny_spec(action_dim).to_json()
    config = {"format": "vla-flywheel/vla-policy/1", "model": {"action_dim": action_dim}, "robot_spec": spec}
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "norm_stats.json").write_text("{}")
    write_manifest(
        directory, parent_version=None, training_run=None, dataset_snapshot=None, metrics={}, robot_spec=spec,
        created_at="2026-01-01T00:00:00+00:00",
    )  # fmt: skip
    return directory


def service_env(settings: ServiceSettings, **extra: str) -> dict[str, str]:
    """The environment that gives a child process the same ``ServiceSettings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")}
    for name, value in settings.model_dump().items():
        if value not in ("", None):
            env[f"FLYWHEEL_{name.upper()}"] = str(value)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(REPO)])
    env.update(extra)
    return env


class Worker:
    """One ``flywheel worker`` process group; output goes to ``log``."""

    def __init__(self, env: dict[str, str], log: Path, name: str, queues: str = "gpu,cpu") -> None:
        self.log = log
        self.name = name
        cmd = [sys.executable, "-m", "flywheel.cli", "worker", "-Q", queues, "-n", f"{name}@%h", "--loglevel", "info"]
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL if it has not exited in 15 s."""
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def wait_ready(self, timeout_s: float) -> None:
        wait_for(lambda: " ready." in self.output(), timeout_s, f"worker {self.name} to be ready")

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def flywheel(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "flywheel.cli", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def submit(env: dict[str, str], *args: str) -> str:
    """``flywheel train cycle ARGS`` in a child process; returns the run id it printed."""
    out = flywheel(env, "train", "cycle", *args)
    assert out.returncode == 0, out.stdout + out.stderr
    match = re.search(r"run (\S+)", out.stdout)
    assert match, out.stdout
    return match.group(1)


def make_settings(tmp_path: Path, **fields: object) -> ServiceSettings:
    """Settings on a data dir under ``tmp_path``, with the machinery-test stage table (``cycle_stages.py``)."""
    base: dict[str, object] = {"data_dir": tmp_path / "data", "stage_table": "cycle_stages:STAGES", "stage_lease_s": 4}
    return ServiceSettings(**{**base, **fields})  # type: ignore[arg-type]


def registered(settings: ServiceSettings) -> list[tuple[str, str | None, dict[str, float]]]:
    """(version, training run, metrics) of every policy in the settings' registry."""
    from data_store.registry import Registry, policies

    reg = Registry(settings.registry_db, settings.registry_artifacts_dir)
    try:
        with reg.session() as s:
            return [(p.version, p.training_run, dict(p.metrics)) for p in policies.list_policies(s)]
    finally:
        reg.close()


def stage(settings: ServiceSettings, run_id: str, name: str) -> dict[str, Any]:
    from trainer.service.progress import run_status

    return next(p for p in run_status(run_id, settings)["progress"] if p["stage"] == name)


def finished(settings: ServiceSettings, run_id: str, timeout_s: float) -> dict[str, Any]:
    from trainer.service.progress import run_status

    def done() -> dict[str, Any] | None:
        record = run_status(run_id, settings)
        return record if record["state"] in ("succeeded", "failed") else None

    return wait_for(done, timeout_s, f"run {run_id} to end")


def write_config(settings: ServiceSettings, policy: str, **stages: dict[str, Any]) -> str:
    """A JSON CycleConfig with stage options, for ``flywheel train cycle --config``."""
    path = settings.root / "cycle.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"policy": policy, "options": stages}))
    return str(path)


def wait_for(check: Callable[[], Any], timeout_s: float, what: str, every_s: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
