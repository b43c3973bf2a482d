"""Training beside other work: an SFT slice and a world-model training slice alone and beside 1 and 3 busy
processes, with the thread policy the trainer uses (``vla.threads.bound_threads``) and with all cores (torch's
default), printed beside the ideal slowdown (the CPU share the job lost).

    python benchmarks/contention.py [--steps 12] [--competitors 0,1,3] [--workloads sft,world_model]

Each measurement runs in a process of its own (fresh thread pools), timing ``--steps`` optimizer steps after two
warm-up steps; the competitors are pure-Python busy loops (one core each). With ``n`` threads on ``c`` cores beside
``k`` competitors, fair scheduling gives the job ``n * min(1, c / (n + k))`` cores against ``min(n, c)`` alone: the
ideal slowdown. The target (issue 17): the measured slowdown within 1.5x of the ideal. JSON lines: ``figure``
``slowdown`` (value), with ``ideal``, ``ratio_to_ideal``, ``threads``, ``competitors``, the seconds per step alone
and beside, and the machine with its load.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data_store.measure import machine  # noqa: E402


def make_step(workload: str) -> Callable[[], None]:
    """One optimizer step of ``workload`` on synthetic data of the cycle's shapes: ``sft`` (tiny policy, batch 32)
    or ``world_model`` (``small`` preset, batch 8)."""
    import numpy as np
    import torch

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    if workload == "sft":
        from data_store.schema import RobotSpec
        from trainer.sft import sft_loss
        from vla.model import VLAConfig, VLAPolicy
        from vla.norm_stats import NormStats

        spec = RobotSpec(4, 4, (-1.0,) * 4, (1.0,) * 4, cameras={"corner4": (64, 64)})
        policy = VLAPolicy(VLAConfig.preset("tiny"), NormStats.from_spec(spec), spec).train()
        batch = (
            rng.integers(0, 256, size=(32, 64, 64, 3), dtype=np.uint8),
            rng.normal(size=(32, 4)).astype(np.float32),
            rng.uniform(-1, 1, size=(32, 8, 4)).astype(np.float32),
            np.ones((32, 8), dtype=bool),
            np.zeros(32, dtype=np.int64),
        )
        opt = torch.optim.AdamW(policy.parameters(), lr=1e-4)

        def sft() -> None:
            loss, _ = sft_loss(policy, batch, ["open the window"])
            opt.zero_grad()
            loss.backward()
            opt.step()

        return sft
    from trainer.world_model import PRESETS, RecordedEpisode, TrainConfig
    from trainer.world_model.data import ChunkWindows
    from trainer.world_model.network import ChunkDenoiser
    from trainer.world_model.train import _train_step

    cfg = PRESETS["small"]
    frames = rng.integers(0, 256, size=(60, 64, 64, 3), dtype=np.uint8)
    episode = RecordedEpisode("e", "t", "v", frames, rng.uniform(-1, 1, (60, 4)).astype(np.float32), True)
    windows = ChunkWindows([episode], cfg.chunk_size, cfg.memory_frames)
    net = ChunkDenoiser(cfg).train()
    wm_opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    train = TrainConfig(steps=10**9, batch_size=8)
    counter = iter(range(10**9))

    def world_model() -> None:
        _train_step(net, wm_opt, windows, cfg, train, next(counter))

    return world_model


def step_seconds(workload: str, threads: int, steps: int) -> float:
    """Seconds per optimizer step of ``workload`` (run inside the measuring process)."""
    from vla.threads import bound_threads

    bound_threads(threads)
    one = make_step(workload)
    for _ in range(2):
        one()
    start = time.perf_counter()
    for _ in range(steps):
        one()
    return (time.perf_counter() - start) / steps


def train_forever(workload: str = "world_model", threads: int = 0, background: bool = True) -> None:
    """A trainer beside something else (``trainer_beside``): steps until killed, with
    the worker's thread policy (``background``: niceness 10, auto threads) or torch's defaults."""
    if background:
        from vla.threads import bound_threads

        bound_threads(threads, background=True)
    one = make_step(workload)
    while True:
        one()


TRAINERS = {  # name -> the trainer beside a benchmark: None (nothing), or train_forever's background flag
    "none": None,
    "trainer_worker_policy": True,  # as the Celery worker runs it: niceness 10, threads bounded
    "trainer_defaults": False,  # torch's default threads at normal priority
}


@contextmanager
def trainer_beside(name: str, warmup_s: float = 8.0) -> Iterator[None]:
    """Run the block beside a world-model trainer process (``TRAINERS[name]``), started ``warmup_s`` before: past
    its imports and first steps, so it is training when the block starts. Killed when the block ends."""
    background = TRAINERS[name]
    if background is None:
        yield
        return
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from benchmarks.contention import train_forever; "
    code += f"train_forever('world_model', 0, {background})"
    trainer = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    try:
        time.sleep(warmup_s)
        if trainer.poll() is not None:
            raise RuntimeError(f"the trainer beside the benchmark exited ({trainer.returncode}) before it started")
        yield
    finally:
        trainer.kill()
        trainer.wait()


def measure(workload: str, threads: int, steps: int, competitors: int) -> float:
    """Seconds per step in a fresh process, beside ``competitors`` busy loops."""
    busy = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], stdout=subprocess.DEVNULL)
        for _ in range(competitors)
    ]
    try:
        time.sleep(0.5 if busy else 0.0)
        code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from benchmarks.contention import step_seconds; "
        code += f"print(step_seconds({workload!r}, {threads}, {steps}))"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
        return float(out.stdout.strip().splitlines()[-1])
    finally:
        for p in busy:
            p.kill()
            p.wait()


def ideal_slowdown(threads: int, cores: int, competitors: int) -> float:
    alone = min(threads, cores)
    beside = threads * min(1.0, cores / (threads + competitors))
    return alone / beside


def main(argv: list[str] | None = None) -> None:
    from vla.threads import cores_given

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--competitors", default="0,1,3")
    parser.add_argument("--workloads", default="sft,world_model")
    args = parser.parse_args(argv)
    cores = cores_given()
    counts = [int(x) for x in args.competitors.split(",")]
    for workload in args.workloads.split(","):
        for threads, policy in ((1, "bounded (bound_threads on a busy machine)"), (cores, "all cores")):
            alone = measure(workload, threads, args.steps, 0)
            for k in (c for c in counts if c > 0):
                beside = measure(workload, threads, args.steps, k)
                ideal = ideal_slowdown(threads, cores, k)
                row: dict[str, Any] = {
                    "name": f"contention/{workload}",
                    "figure": "slowdown",
                    "value": round(beside / alone, 3),
                    "unit": "x",
                    "ideal": round(ideal, 3),
                    "ratio_to_ideal": round(beside / alone / ideal, 3),
                    "target": "ratio_to_ideal <= 1.5",
                    "threads": threads,
                    "thread_policy": policy,
                    "competitors": k,
                    "s_per_step_alone": round(alone, 4),
                    "s_per_step_beside": round(beside, 4),
                    "machine": machine(),
                    "config": {"steps": args.steps, "cores": cores, "workload": workload},
                }
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
