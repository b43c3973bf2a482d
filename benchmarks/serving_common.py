"""What the serving benchmarks share: JSON-line output, the machine, a real server process, tiny artifacts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


@dataclass
class RunningServer:
    url: str
    proc: subprocess.Popen[bytes]
    tokens: dict[str, str]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_server(data_dir: Path, *, db_url: str = "", schema: str = "", workers: int = 1) -> RunningServer:
    """``uvicorn serving.app:create_app --factory`` as its own process, with a token per role."""
    from data_store.registry import Registry, tokens

    data_dir.mkdir(parents=True, exist_ok=True)
    url = db_url or f"sqlite:///{data_dir / 'registry' / 'registry.db'}"
    registry = Registry(url, data_dir / "registry" / "artifacts", schema=schema or None)
    with registry.session() as s:
        made = {role: tokens.create_token(s, role, name=f"bench-{role}")[0] for role in tokens.ROLES}
    registry.close()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    env = {**os.environ, "FLYWHEEL_DATA_DIR": str(data_dir), "FLYWHEEL_REGISTRY_URL": url,
           "FLYWHEEL_REGISTRY_SCHEMA": schema, "PYTHONPATH": str(ROOT)}  # fmt: skip
    cmd = [sys.executable, "-m", "uvicorn", "serving.app:create_app", "--factory", "--port", str(port),
           "--log-level", "warning", "--workers", str(workers)]  # fmt: skip
    log = (data_dir / "server.log").open("ab")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    server = RunningServer(f"http://127.0.0.1:{port}", proc, made)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited; see {data_dir / 'server.log'}")
        try:
            if httpx.get(server.url + "/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start in 60 s")


def tiny_artifact(folder: Path, seed: int, preset: str = "tiny") -> str:
    """A real ``VLAPolicy`` of ``preset`` for the simulated arm (A=4, S=4, one 64×64 camera), saved."""
    import torch

    from data_store.schema import RobotSpec
    from vla.artifact import save_artifact
    from vla.model import VLAConfig, VLAPolicy
    from vla.norm_stats import NormStats

    spec = RobotSpec(4, 4, (-1.0,) * 4, (1.0,) * 4, cameras={"corner": (64, 64)})
    torch.manual_seed(seed)
    policy = VLAPolicy(VLAConfig.preset(preset, action_dim=4, state_dim=4), NormStats.from_spec(spec), spec,
                       load_pretrained_vision=False)  # fmt: skip
    return save_artifact(policy, folder)


def upload(client: httpx.Client, folder: Path) -> str:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for f in sorted(folder.iterdir()):
            tar.add(f, arcname=f.name)
    r = client.post("/policies", files={"file": ("a.tar.gz", buf.getvalue(), "application/gzip")})
    r.raise_for_status()
    return str(r.json()["policy"]["version"])
