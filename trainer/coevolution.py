"""WMPO in imagination, and WoVR's policy–world-model co-evolution (PACE) on top of it.

:func:`wmpo` is WMPO's RL stage (arXiv 2511.09515, §3): starts from the store's real episodes (first
frames, plus a ``kir_share`` of keyframe starts for WoVR's KIR), imagined groups from
``trainer/imagine.py``, the GRPO update of ``trainer/grpo.py``.

:func:`coevolve` is WoVR PACE (arXiv 2602.13977): RL in WM_Base → collect a *limited* set of real rollouts of
the evolved policy → fine-tune the world model and the reward model on the old and new episodes
(WM_Evo) → continue RL. Done once, as WoVR does ("only once, or at very low frequency", §4.3). The
lifelong loop of WMPO §4.5 repeats the same three steps per round (``trainer/bench/lifelong.py``).

Departures: the number of extra real rollouts is not in the WoVR text we could read (its appendix and
RLinf code); ours is a parameter, and the bench counts those episodes in the variant's real budget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trainer.grpo import DrawGroups, GRPOConfig, Rollouts, make_optimizer, train_grpo
from trainer.imagine import (
    ImagineConfig,
    ImaginedBatch,
    ProprioNet,
    StartSampler,
    StartState,
    first_frame_starts,
    imagine_rollouts,
)
from trainer.keyframes import KeyframeConfig, complete_episodes, find_keyframes, keyframe_start
from trainer.protocols import RewardModel, WorldModel
from vla.protocol import TrainablePolicy


@dataclass(frozen=True)
class WMPOConfig:
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    iterations: int = 20  # GRPO updates per RL stage
    kir_share: float = 0.0  # share of keyframe starts (0: WMPO; WoVR KIR: > 0)
    deploy_members: int = 0  # rollouts per group acting at the deployment temperature (trainer/recipe.py)
    deploy_temperature: float = 0.0
    proprio: str = "learned"  # see trainer/imagine.py
    keyframes: KeyframeConfig = field(default_factory=KeyframeConfig)
    seed: int = 0


@dataclass
class Imagination:
    """The learned stand-ins for the arm during RL: world model, reward model, imagined proprio, starts."""

    world_model: WorldModel
    reward_model: RewardModel
    proprio: ProprioNet  # or the linear trainer.imagine.ProprioModel
    sampler: StartSampler
    camera: str
    keyframes_found: int = 0
    safety: str | None = None  # the robot's safety preset: imagined actions are filtered as the robot filters them

    def imagine(
        self, policy: TrainablePolicy, starts: list[StartState], temperature: float, group: int, seed: int
    ) -> ImaginedBatch:
        """``group`` rollouts of ``policy`` from each start with the world model's noise and the sampling seeded
        (two policies imagined with one seed meet the same imagined noise): the judge's and the agreement check's
        imagination."""
        self.world_model.seed = seed
        return imagine_rollouts(
            policy,
            self.world_model,
            self.reward_model,
            starts,
            ImagineConfig(group_size=group, temperature=temperature),
            self.camera,
            seed=seed,
            proprio_model=self.proprio,
            safety=self.safety,
        )

    def draw(self, policy: TrainablePolicy, cfg: WMPOConfig, log: list[dict[str, Any]] | None = None) -> DrawGroups:
        icfg = ImagineConfig(
            group_size=cfg.grpo.group_size,
            temperature=cfg.grpo.temperature,
            proprio="learned" if cfg.proprio == "learned" else "start",
            deploy_members=cfg.deploy_members,
            deploy_temperature=cfg.deploy_temperature,
        )

        def draw(n_groups: int) -> Rollouts:
            batch = imagine_rollouts(
                policy,
                self.world_model,
                self.reward_model,
                self.sampler.draw(n_groups),
                icfg,
                self.camera,
                proprio_model=self.proprio,
                safety=self.safety,
            )
            if log is not None:
                kir = np.array([s.start_step > 0 for s in batch.starts])
                ok = batch.rollouts.success.numpy() > 0
                log.append(
                    {
                        "imagined_success": float(ok.mean()),
                        "imagined_success_first_frame": float(ok[~kir].mean()) if (~kir).any() else float("nan"),
                        "imagined_success_kir": float(ok[kir].mean()) if kir.any() else float("nan"),
                        "valid_chunks_mean": float(batch.rollouts.mask.float().sum(1).mean()),
                    }
                )
            return batch.rollouts

        return draw


def load_models(world_model_dir: Any, reward_model_dir: Any) -> tuple[Any, Any]:
    """The world model and reward model saved by ``flywheel train world-model`` / ``reward-model``."""
    from trainer.reward_model import FrameRewardModel
    from trainer.world_model import PixelWorldModel

    return PixelWorldModel.load(world_model_dir), FrameRewardModel.load(reward_model_dir)


def context_len(world_model: WorldModel) -> int:
    """C context frames the world model takes (reference + memory)."""
    cfg = getattr(world_model, "config", None)
    for obj in (world_model, cfg):
        value = getattr(obj, "context_frames", None)
        if isinstance(value, int):
            return value
    return 5


def build_imagination(
    store: Any,
    task: str,
    world_model: WorldModel,
    reward_model: RewardModel,
    horizon: int,
    cfg: WMPOConfig,
    camera: str | None = None,
    robot_ids: tuple[str, ...] | None = ("base", "evolved"),
    safety: str | None = None,
) -> Imagination:
    """Starts (first frames + keyframe starts) and the proprio model, from the store's episodes of ``task``
    recorded by ``robot_ids`` (the policy's own rollouts, as WMPO uses; None: every episode)."""
    infos = [i for i in complete_episodes(store, task, robot_ids) if i.length >= 2]
    if not infos:
        raise ValueError(f"no complete episodes of task {task!r} in the store")
    cam = camera or next(iter(infos[0].spec.cameras))
    c = context_len(world_model)
    first = first_frame_starts(store, task, horizon, c, cam, robot_ids)
    proprio_data, kir = [], []
    by_id = {}
    for info in infos:
        r = store.open(info.episode_id)
        states, actions = r.states(), r.actions()
        proprio_data.append((states, actions))
        by_id[info.episode_id] = (r, states, actions, info.instruction)
    found = 0
    if cfg.kir_share > 0:
        kcfg = KeyframeConfig(**{**cfg.keyframes.__dict__, "memory": c - 1})
        keyframes = find_keyframes(store, task, kcfg, cam, robot_ids)
        found = len(keyframes)
        for kf in keyframes:
            r, states, actions, instruction = by_id[kf.episode_id]
            kir.append(keyframe_start(r.images(cam), states, actions, kf, instruction, horizon, kcfg))
    sampler = StartSampler(first, kir, cfg.kir_share, seed=cfg.seed)
    proprio = ProprioNet.fit(proprio_data, seed=cfg.seed)
    return Imagination(world_model, reward_model, proprio, sampler, cam, found, safety)


def wmpo(
    policy: TrainablePolicy,
    imagination: Imagination,
    cfg: WMPOConfig,
    on_iteration: Callable[[int, dict[str, float]], None] | None = None,
    iterations: int | None = None,
    on_draw: Callable[[int, int, dict[str, Any]], None] | None = None,
) -> list[dict[str, float]]:
    """One RL stage in imagination: ``iterations`` GRPO updates on imagined, filtered groups. ``on_draw(iteration,
    draws so far in it, the draw's figures)`` follows the work inside an iteration (a draw imagines a batch of
    groups; dynamic sampling may draw several before an update)."""
    log: list[dict[str, Any]] = []
    optimizer = make_optimizer(policy, cfg.grpo)
    history: list[dict[str, float]] = []
    inner = imagination.draw(policy, cfg, log)
    it = 0

    def draw(n_groups: int) -> Any:
        rollouts = inner(n_groups)
        if on_draw is not None:
            on_draw(it, len(log), log[-1])
        return rollouts

    for it in range(cfg.iterations if iterations is None else iterations):
        log.clear()
        stats = train_grpo(policy, draw, cfg.grpo, 1, None, optimizer)[0]
        stats["iteration"] = float(it)
        for key in ("imagined_success", "imagined_success_first_frame", "imagined_success_kir"):
            values = [d[key] for d in log if not np.isnan(d[key])]
            stats[key] = float(np.mean(values)) if values else float("nan")
        history.append(stats)
        if on_iteration is not None:
            on_iteration(it, stats)
    return history


Collect = Callable[[Any, int], Any]  # (policy, n episodes) -> writes n real episodes of the policy to the store
Refit = Callable[[Any, Any], tuple[Any, Any]]  # (world model, reward model) -> fine-tuned (world model, reward model)


def coevolve(
    policy: TrainablePolicy,
    imagination: Imagination,
    cfg: WMPOConfig,
    extra_episodes: int,
    collect: Collect,
    refit: Refit,
    rebuild: Callable[[Any, Any], Imagination],
    stage_iterations: tuple[int, int] | None = None,
    on_iteration: Callable[[int, dict[str, float]], None] | None = None,
) -> tuple[list[dict[str, float]], Imagination]:
    """WoVR PACE: RL in WM_Base → ``extra_episodes`` real rollouts of the evolved policy → WM_Evo → more RL.

    ``stage_iterations`` = (RL in WM_Base, RL in WM_Evo); pass 0 for the first to continue a policy that has
    already had its stage in WM_Base (the bench reuses WMPO + KIR's policy)."""
    first, second = stage_iterations or (cfg.iterations, cfg.iterations)
    history = wmpo(policy, imagination, cfg, on_iteration, iterations=first) if first else []
    collect(policy, extra_episodes)
    world_model, reward_model = refit(imagination.world_model, imagination.reward_model)
    evolved = rebuild(world_model, reward_model)
    history += wmpo(policy, evolved, cfg, on_iteration, iterations=second)
    return history, evolved
