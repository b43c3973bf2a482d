"""Control-loop benchmark: step latency and missed deadlines at 10 Hz on the wall clock, recording on.

    python benchmarks/control_loop.py [--task drawer-close] [--episodes 3] [--size 64] [--fps 10] [--dir DIR]

The real parts: ``SimRobot`` (Meta-World, 64×64 renders) paced on the wall clock like a physical arm
(``realtime=True``), the scripted expert through ``PolicySlot``, the safety filter, and the ``Recorder``
writing into a real ``EpisodeStore`` on disk. Side by side in one run:

1. ``control_loop_paced_{no_recording,sync,buffered_1s}``: episodes at ``--fps``; figures: step latency
   p50 / p99 / max (observe → chunk → filter → send → record, the work inside one tick), missed deadlines
   (ticks that ended after their deadline), steps. ``sync``: each step is published before ``append``
   returns; ``buffered_1s``: the writer thread publishes (a crash loses at most 1 s).
2. ``control_loop_unpaced_*``: the same on the sim clock (no sleeping): steps/s and CPU ms per step (all
   threads of the process; less sensitive to a busy machine than wall time), the headroom over 10 Hz
   and what thousands of simulated episodes (evaluation, GRPO baselines) run at.

With ``--beside-training``: instead, the paced, buffered loop alone and beside a trainer process on the same machine
(a world-model training loop, ``benchmarks/contention.py``), once as the Celery worker runs it
(``vla.threads.bound_threads``: niceness 10, auto threads) and once with torch's defaults at normal priority:
``control_loop_beside_{none,trainer_worker_policy,trainer_defaults}`` with missed deadlines and step latency p99
side by side (target: 0 missed deadlines beside the worker-policy trainer).

Prints JSON lines ``{"name", "figure", "value", "unit", "machine", "config"}``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from data_store.episodes import EpisodeStore
from data_store.measure import emit
from robot_agent.loop import EpisodeResult, run_episode
from robot_agent.policies import ScriptedPolicy
from robot_agent.robots.sim import SimRobot
from robot_agent.slot import PolicySlot

MODES = {"no_recording": None, "sync": 0.0, "buffered_1s": 1.0}  # name -> EpisodeWriter buffer_s


@dataclass(frozen=True)
class ControlLoopBenchConfig:
    task: str = "drawer-close"
    episodes: int = 3
    size: int = 64
    fps: float = 10.0
    noise: float = 0.1


def run_mode(
    robot: SimRobot, store: EpisodeStore, cfg: ControlLoopBenchConfig, buffer_s: float | None
) -> list[EpisodeResult]:
    slot = PolicySlot(ScriptedPolicy(noise=cfg.noise, robot=robot), "scripted")
    results = []
    for seed in range(cfg.episodes):
        writer = None
        if buffer_s is not None:
            writer = store.create(
                robot.spec, task=cfg.task, instruction=robot.task.instruction_for(seed), buffer_s=buffer_s
            )
        results.append(run_episode(robot, slot, seed=seed, writer=writer))
    return results


def beside_training(cfg: ControlLoopBenchConfig, store: EpisodeStore) -> None:
    """The paced loop (recording, 1 s buffer) alone, then beside a trainer with each thread policy."""
    from contention import TRAINERS, trainer_beside  # benchmarks/ is this script's folder

    for name in TRAINERS:
        with trainer_beside(name):
            robot = SimRobot(cfg.task, image_size=cfg.size, realtime=True)
            robot.arm.fps = cfg.fps
            robot.connect()
            try:
                results = run_mode(robot, store, cfg, 1.0)
            finally:
                robot.disconnect()
        latency_ms = np.array([x for r in results for x in r.step_latency_s]) * 1e3
        steps = int(sum(r.steps for r in results))
        missed = int(sum(r.missed_deadlines for r in results))
        config = {**asdict(cfg), "writer_buffer_s": 1.0, "paced": True, "beside": name}
        emit(f"control_loop_beside_{name}", "missed_deadlines", missed, "ticks", config, steps=steps, target=0)
        emit(f"control_loop_beside_{name}", "step_latency_p99", float(np.percentile(latency_ms, 99)), "ms", config)
        emit(f"control_loop_beside_{name}", "step_latency_max", float(latency_ms.max()), "ms", config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default=ControlLoopBenchConfig.task)
    parser.add_argument("--episodes", type=int, default=ControlLoopBenchConfig.episodes)
    parser.add_argument("--size", type=int, default=ControlLoopBenchConfig.size)
    parser.add_argument("--fps", type=float, default=ControlLoopBenchConfig.fps)
    parser.add_argument("--dir", type=Path, default=None, help="Store folder (default: a temporary one).")
    parser.add_argument("--beside-training", action="store_true", help="The loop alone and beside a trainer.")
    args = parser.parse_args()
    cfg = ControlLoopBenchConfig(task=args.task, episodes=args.episodes, size=args.size, fps=args.fps)
    root = args.dir or Path(tempfile.mkdtemp(prefix="bench_control_loop_"))
    try:
        store = EpisodeStore(root)
        if args.beside_training:
            beside_training(cfg, store)
            return
        for paced in (True, False):
            robot = SimRobot(cfg.task, image_size=cfg.size, realtime=paced)
            robot.arm.fps = cfg.fps
            robot.connect()
            try:
                for mode, buffer_s in MODES.items():
                    config = {**asdict(cfg), "writer_buffer_s": buffer_s, "paced": paced}
                    started, cpu_started = time.perf_counter(), time.process_time()
                    results = run_mode(robot, store, cfg, buffer_s)
                    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
                    latency_ms = np.array([x for r in results for x in r.step_latency_s]) * 1e3
                    steps = int(sum(r.steps for r in results))
                    name = f"control_loop_{'paced' if paced else 'unpaced'}_{mode}"
                    emit(name, "steps", steps, "steps", config)
                    emit(name, "successes", sum(bool(r.success) for r in results), "episodes", config)
                    if paced:
                        emit(name, "step_latency_p50", float(np.percentile(latency_ms, 50)), "ms", config)
                        emit(name, "step_latency_p99", float(np.percentile(latency_ms, 99)), "ms", config)
                        emit(name, "step_latency_max", float(latency_ms.max()), "ms", config)
                        missed = int(sum(r.missed_deadlines for r in results))
                        emit(name, "missed_deadlines", missed, "ticks", config)
                        emit(name, "missed_deadline_fraction", missed / max(steps, 1), "fraction", config)
                    else:
                        emit(name, "steps_per_s", steps / wall, "steps/s", config)
                        # CPU time of this process (all its threads) per step: less sensitive to a busy machine
                        emit(name, "cpu_time_per_step", cpu / max(steps, 1) * 1e3, "ms", config)
                        emit(name, "step_latency_p50", float(np.percentile(latency_ms, 50)), "ms", config)
            finally:
                robot.disconnect()
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
