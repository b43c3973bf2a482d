"""Action-replay agreement of a cycle's models (issue 13): ``flywheel bench world-model --store ...``.

The same measurement the cycle records before GRPO (``trainer.cycle.check_imagination``), at a size chosen here:
a policy's imagined groups from S starts, each trajectory's actions replayed on the simulated arm. Two kinds of
start, measured apart: WMPO's first frames (the held-out episodes of the recipe's judge split: starts GRPO never
trained on) and WoVR's keyframe starts (KIR, from the training part, where GRPO draws them). KIR is meant to
shorten the depth at which imagination has to be right; agreement per kind and by step h shows whether it does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class AgreementConfig:
    store: str
    policy: str
    world_model: str
    reward_model: str
    task: str = "drawer-close"
    starts: int = 16  # of each kind
    group: int | None = None  # None: the recipe's GRPO group size
    temperature: float | None = None  # None: the recipe's sampling temperature
    recipe: str = "default"
    seed: int = 0
    camera: str | None = None
    episode_ids: tuple[str, ...] | None = None  # the cycle's snapshot (its judge split); None: every episode of task


def run_agreement(cfg: AgreementConfig, emit: Callable[[str, str, float, str, dict[str, Any]], None]) -> dict[str, Any]:
    """Measure and ``emit(name, figure, value, unit, config)`` every figure; returns {kind: Agreement}."""
    from data_store.episodes import EpisodeStore
    from trainer.agreement import measure, replay_arm, unit_of
    from trainer.cycle import cycle_horizon, held_out_starts, imagination_for, judge_split
    from trainer.recipe import recipe
    from trainer.reward_model import FrameRewardModel
    from trainer.world_model import load_world_model
    from vla.artifact import load_artifact

    # kir_share > 0 only makes imagination_for find the keyframe starts, measured apart below; no share is drawn
    r = recipe(cfg.recipe, seed=cfg.seed, kir_share=1.0)
    store = EpisodeStore(cfg.store, recover=False)
    infos = store.episodes(task=cfg.task, status="complete")
    if cfg.episode_ids is not None:
        wanted = set(cfg.episode_ids)
        infos = [i for i in infos if i.episode_id in wanted]
    if len(infos) < 2:
        raise ValueError(f"{cfg.store} holds {len(infos)} complete episodes of {cfg.task!r}; at least 2 are needed")
    ids = [i.episode_id for i in infos]
    horizon = cycle_horizon(r, cfg.task, [i.length for i in infos])
    wm = load_world_model(cfg.world_model, seed=cfg.seed)
    rm = FrameRewardModel.load(cfg.reward_model)
    policy = load_artifact(cfg.policy)
    split = judge_split(ids, r, store)
    imagination = imagination_for(store, cfg.task, wm, rm, r, horizon, cfg.camera, split.train)
    kinds = {
        "first_frame": held_out_starts(store, cfg.task, split, horizon, wm, cfg.camera),
        "keyframe": imagination.sampler.keyframe_starts,
    }
    group = cfg.group or r.grpo.group_size
    temperature = r.grpo.temperature if cfg.temperature is None else cfg.temperature
    config = {k: v for k, v in asdict(cfg).items() if k not in ("store", "episode_ids")}
    config.update(group=group, temperature=temperature, horizon=horizon, episodes=len(ids))
    found: dict[str, Any] = {}
    with replay_arm(cfg.task, imagination) as arm:
        for kind, pool in kinds.items():
            picked = _spread(pool, cfg.starts)
            a = measure(policy, imagination, picked, store, arm, temperature, group, horizon, seed=cfg.seed)
            if a is None:
                continue
            found[kind] = a
            for figure, value in a.figures.items():
                emit(f"agreement/{cfg.task}/{kind}", figure, value, unit_of(figure), {**config, "starts": len(picked)})
    return found


def _spread(pool: list[Any], n: int) -> list[Any]:
    """n starts spread evenly over the pool (deterministic), all of them when there are fewer."""
    if len(pool) <= n:
        return list(pool)
    return [pool[int(i)] for i in np.linspace(0, len(pool) - 1, n).round()]
