"""``flywheel bench rl-cost``: what imagined RL costs on this machine (wall time, peak memory, throughput).

Two parts:

1. **Stages** of the paper bench's default configuration (``--from DIR`` reads the stage wall times that
   ``bench paper`` wrote to ``results.jsonl``; peak memory comes from this run's own measurements).
2. **Scaling**: one imagined draw (B initial states × G rollouts × horizon H steps, world model + reward
   model + policy sampling) and one GRPO update on it, for a small grid of G, B and H around the default
   (G=8, B=4, H=32 steps), with the default-sized policy and world model. Costs do not depend on what the
   weights have learned, so the models are freshly initialised; the reward model is the project's own.
   Reported: seconds per draw and per update, imagined trajectories per hour, peak resident memory.

3. **Where the time goes** (``breakdown``): one imagined GRPO iteration at the default point, its draw split among
   the policy (sampling, log-probs), the world model, the reward model and the proprio model, then the update; and
   imagined frames per second beside the simulator's own step + render rate at the same resolution (one arm, one
   core), so the next speed-up is aimed, not guessed.

Peak memory is the process's resident set, sampled every 20 ms during the measured call (torch's CPU
allocator is invisible to tracemalloc).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer.grpo import PRESETS as GRPO_PRESETS
from trainer.grpo import make_optimizer, update
from trainer.imagine import ImagineConfig, ProprioModel, StartState, imagine_rollouts


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, wall seconds, peak resident MiB during the call)."""
    peak = [rss_mib()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            peak[0] = max(peak[0], rss_mib())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    try:
        result = fn()
    finally:
        elapsed = time.perf_counter() - t0
        stop.set()
        thread.join()
    return result, elapsed, max(peak[0], rss_mib())


@dataclass(frozen=True)
class CostPoint:
    group_size: int
    batch: int  # initial states per draw
    horizon: int  # environment steps


DEFAULT_POINT = CostPoint(8, 4, 32)  # one draw of the `reduced` bench preset (B=4 × G=8), over 4 chunks
GRID = (
    DEFAULT_POINT,
    CostPoint(4, 4, 32),
    CostPoint(16, 4, 32),
    CostPoint(8, 2, 32),
    CostPoint(8, 8, 32),
    CostPoint(8, 4, 16),
    CostPoint(8, 4, 64),
)
QUICK_GRID = (CostPoint(2, 1, 16), CostPoint(4, 1, 16), CostPoint(2, 1, 32))


def _models(policy_preset: str, world_preset: str) -> tuple[Any, Any, Any, ProprioModel]:
    """Freshly initialised policy, world model and reward model of the default sizes."""
    from data_store.schema import RobotSpec
    from trainer.reward_model import PRESETS as RM_PRESETS
    from trainer.reward_model import FrameRewardModel, SuccessClassifier
    from trainer.world_model.config import PRESETS as WM_PRESETS
    from trainer.world_model.model import PixelWorldModel
    from trainer.world_model.network import ChunkDenoiser
    from vla.model import VLAConfig, VLAPolicy
    from vla.norm_stats import NormStats

    spec = RobotSpec(4, 4, (-1.0,) * 4, (1.0,) * 4, cameras={"corner4": (64, 64)})
    policy = VLAPolicy(VLAConfig.preset(policy_preset), NormStats.from_spec(spec), spec).eval()
    world_model = PixelWorldModel(ChunkDenoiser(WM_PRESETS[world_preset]))
    rm_cfg = RM_PRESETS[world_preset]
    reward_model = FrameRewardModel(SuccessClassifier(rm_cfg), rm_cfg, threshold=2.0)  # never ends early: full cost
    proprio = ProprioModel(
        np.eye(4, dtype=np.float32) * 0.01, np.zeros(4, np.float32), -np.ones(4, np.float32), np.ones(4, np.float32)
    )
    return policy, world_model, reward_model, proprio


def scaling(
    grid: tuple[CostPoint, ...],
    policy_preset: str = "small",
    world_preset: str = "small",
    emit: Callable[..., None] | None = None,
) -> list[dict[str, Any]]:
    """Time and memory of one imagined draw and one GRPO update per grid point."""
    policy, world_model, reward_model, proprio = _models(policy_preset, world_preset)
    rng = np.random.default_rng(0)
    c = getattr(world_model.config, "context_frames", 3)
    rows = []
    for point in grid:
        start = StartState(
            context_frames=rng.integers(0, 256, size=(c, 64, 64, 3), dtype=np.uint8),
            context_actions=np.zeros((c - 1, 4), np.float32),
            state=np.zeros(4, np.float32),
            instruction="close the drawer",
            steps_left=point.horizon,
        )
        icfg = ImagineConfig(group_size=point.group_size)
        torch.manual_seed(0)
        draw = partial(imagine_rollouts, policy, world_model, reward_model, [start] * point.batch, icfg, "corner4")
        batch, draw_s, draw_mib = measure(partial(draw, proprio_model=proprio))
        rollouts = batch.rollouts
        rollouts.success = torch.as_tensor(rng.integers(0, 2, size=rollouts.success.shape), dtype=torch.float32)
        gcfg = GRPO_PRESETS["cpu"]
        opt = make_optimizer(policy, gcfg)
        policy.train()
        _, update_s, update_mib = measure(partial(update, policy, opt, rollouts, gcfg))
        policy.eval()
        n = point.batch * point.group_size
        row = {
            "group_size": point.group_size,
            "batch": point.batch,
            "horizon": point.horizon,
            "trajectories": n,
            "draw_s": round(draw_s, 2),
            "update_s": round(update_s, 2),
            "imagined_trajectories_per_hour": round(3600 * n / draw_s),
            "rl_trajectories_per_hour": round(3600 * n / (draw_s + update_s)),
            "peak_rss_mib": round(max(draw_mib, update_mib)),
        }
        rows.append(row)
        if emit is not None:
            name = f"rl-cost/G{point.group_size}-B{point.batch}-H{point.horizon}"
            emit(name, "draw_time", draw_s, "s", **row)
    return rows


PARTS = {  # part -> (attribute, methods) of what imagine_rollouts calls
    "policy": ("policy", ("sample", "log_prob")),
    "world_model": ("world_model", ("reset", "step")),
    "reward_model": ("reward_model", ("first_success",)),
    "proprio": ("proprio", ("roll",)),
}


class _Timed:
    """``obj`` with the calls of ``methods`` timed into ``seconds[part]``; everything else passes through."""

    def __init__(self, obj: Any, part: str, methods: tuple[str, ...], seconds: dict[str, float]) -> None:
        self._obj, self._part, self._methods, self._seconds = obj, part, methods, seconds

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._obj, name)
        if name not in self._methods:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                self._seconds[self._part] += time.perf_counter() - t0

        return call


def breakdown(
    point: CostPoint = DEFAULT_POINT,
    policy_preset: str = "small",
    world_preset: str = "small",
    sim_task: str | None = "drawer-close",
    sim_seconds: float = 3.0,
) -> dict[str, float]:
    """Seconds of one imagined GRPO iteration by part (``PARTS``, ``other``: the loop's own work, ``update``),
    imagined frames per second, and the simulator's step + render frames per second (``sim_task`` None: skipped)."""
    names = ("policy", "world_model", "reward_model", "proprio")
    models = dict(zip(names, _models(policy_preset, world_preset), strict=True))
    seconds = dict.fromkeys(PARTS, 0.0)
    timed: dict[str, Any] = {
        name: _Timed(models[name], part, methods, seconds) for part, (name, methods) in PARTS.items()
    }
    rng = np.random.default_rng(0)
    c = getattr(models["world_model"].config, "context_frames", 3)
    h, w = (int(x) for x in models["world_model"].image_size)
    start = StartState(
        context_frames=rng.integers(0, 256, size=(c, h, w, 3), dtype=np.uint8),
        context_actions=np.zeros((c - 1, 4), np.float32),
        state=np.zeros(4, np.float32),
        instruction="close the drawer",
        steps_left=point.horizon,
    )
    torch.manual_seed(0)
    args = (timed["policy"], timed["world_model"], timed["reward_model"], [start] * point.batch)
    t0 = time.perf_counter()
    icfg = ImagineConfig(group_size=point.group_size)
    batch = imagine_rollouts(*args, icfg, "corner4", proprio_model=timed["proprio"])
    draw_s = time.perf_counter() - t0
    rollouts = batch.rollouts
    rollouts.success = torch.as_tensor(rng.integers(0, 2, size=rollouts.success.shape), dtype=torch.float32)
    gcfg = GRPO_PRESETS["cpu"]
    models["policy"].train()
    t0 = time.perf_counter()
    update(models["policy"], make_optimizer(models["policy"], gcfg), rollouts, gcfg)
    out = {**seconds, "other": draw_s - sum(seconds.values()), "update": time.perf_counter() - t0, "draw": draw_s}
    out["imagined_frames_per_s"] = point.batch * point.group_size * point.horizon / draw_s
    if sim_task is not None:
        from trainer.bench.world_model import sim_rate  # `bench world-model`'s own measure of the simulator

        out["sim_frames_per_s"] = sim_rate(sim_task, (h, w), sim_seconds)[0]
    return out


def stage_times(results: Path) -> list[dict[str, Any]]:
    """The stage wall times a ``bench paper`` run wrote."""
    import json

    out = []
    for line in results.read_text().splitlines():
        d = json.loads(line)
        if d.get("figure") == "wall_time":
            out.append({"stage": d["name"], "s": round(d["value"], 1)})
    return out


def markdown(rows: list[dict[str, Any]]) -> str:
    head = ["G", "B", "H", "traj", "draw s", "update s", "imagined traj/h", "RL traj/h", "peak MiB"]
    keys = [
        "group_size",
        "batch",
        "horizon",
        "trajectories",
        "draw_s",
        "update_s",
        "imagined_trajectories_per_hour",
        "rl_trajectories_per_hour",
        "peak_rss_mib",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)
