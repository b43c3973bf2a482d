"""One flywheel cycle, step by step: the only implementation, called by everything that runs or measures one.

    episodes  = episodes_of(store, ids, camera)                          # the snapshot
    wm        = fit_world_model_step(recipe, episodes, out / "wm")        # WMPO §3.2 (fine-tuned with init=)
    rm        = fit_reward_model_step(recipe, episodes, wm, out / "rm")   # WMPO §3.3, also on wm's replays
    split     = judge_split(ids, recipe)                                 # first frames held out of GRPO
    imag      = imagination_for(store, task, wm, rm, recipe, horizon, camera, split.train)
    starts    = held_out_starts(store, task, split, horizon, wm, camera)
    trust     = check_imagination(parent, imag, starts, store, arm, recipe, horizon)  # action-replay agreement
    history   = improve(policy, imag, recipe)                            # imagined GRPO (WMPO, + KIR), in place
    verdict   = judge(policy, parent, imag, starts, recipe, sim=SimJudge(task, scenes))  # at the deployment T
    verdict.promote, verdict.reason                                      # register as `candidate`, or not

Callers: the Celery stages (``trainer/service/stages.py``: one step per stage, checkpointed), ``flywheel train
cycle --inline`` and ``flywheel demo`` (the same stages in one process), ``flywheel bench paper`` and ``flywheel
bench lifelong`` (``trainer/bench/paper.py``, ``trainer/bench/lifelong.py``: these steps in a loop over tasks,
variants and seeds). All take their settings from one :class:`trainer.recipe.Recipe`.

The judge: a candidate is promoted only when it does not lose to its parent on what the cycle can measure, both
policies at the deployment temperature (what the robot runs):

0. before GRPO, where a simulator stands in for the arm: the parent's imagined groups from held-out first frames,
   their actions replayed on the arm (``trainer/agreement.py``), are recorded; below ``min_agreement`` outcome
   agreement the cycle makes no update and says why (``imagination_trusted``);
1. GRPO made at least one update (otherwise the candidate *is* the parent);
2. imagined success from held-out first frames (starts GRPO never trained on; the same world-model noise for
   both policies, so the comparison is paired per start): the one-sided sign-flip test must not find the
   candidate worse at ``judge_alpha``; with no simulator, its mean must also be at least the parent's;
3. where a simulator task is configured, true success on the same validation scenes (disjoint from the bench's
   evaluation scenes): at least the parent's, with the exact McNemar test reported.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data_store.stats import Rate, mcnemar, sign_flip, wilson
from trainer.agreement import Agreement
from trainer.agreement import measure as measure_agreement
from trainer.coevolution import Imagination, WMPOConfig, build_imagination, context_len, wmpo
from trainer.imagine import StartState, first_frame_starts
from trainer.protocols import RewardModel, WorldModel
from trainer.recipe import VALIDATION_SEED, Recipe
from vla.protocol import TrainablePolicy

# --------------------------------------------------------------------------------------------- the snapshot


class StoreView:
    """An episode store that shows only some of its episodes (a snapshot, or a split of one), for the functions
    that list the store themselves (``build_imagination``, ``find_keyframes``)."""

    def __init__(self, store: Any, episode_ids: Sequence[str]) -> None:
        self.store = store
        self.ids = set(episode_ids)

    def episodes(self, *args: Any, **filters: Any) -> list[Any]:
        return [i for i in self.store.episodes(*args, **filters) if i.episode_id in self.ids]

    def open(self, episode_id: str) -> Any:
        if episode_id not in self.ids:
            raise KeyError(f"episode {episode_id} is not in this view of the store")
        return self.store.open(episode_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def episodes_of(store: Any, episode_ids: Sequence[str], camera: str | None = None) -> list[Any]:
    """The episodes as the world and reward models read them (``RecordedEpisode``: one camera's frames, actions,
    the success label)."""
    from trainer.world_model import load_episodes

    return load_episodes(store, camera=camera, episode_ids=list(episode_ids))


def cycle_horizon(recipe: Recipe, task: str | None, lengths: Sequence[int]) -> int:
    """Imagined episode length: the recipe's; else the simulated task's step budget (an imagined success must
    come where a real one can: drawer-close's base succeeds at steps 83–97 of 100); else the longest episode."""
    if recipe.horizon:
        return int(recipe.horizon)
    if task:
        try:
            from sim.tasks import resolve_task

            return int(resolve_task(task).max_steps)
        except (ImportError, KeyError, ValueError):
            pass
    return int(max(lengths))


# ------------------------------------------------------------------------------------------------ the models


def fit_world_model_step(
    recipe: Recipe,
    episodes: Sequence[Any],
    out: Path,
    *,
    init: Any = None,
    resume: bool = False,
    on_log: Callable[[int, float], None] | None = None,
    checkpoint_every: int = 200,
    log_every: int = 25,
) -> Any:
    """The action-conditioned video world model on the snapshot; fine-tuned from ``init`` (a model or its folder:
    the previous cycle's, WoVR PACE) for ``refit_world_model_steps``, else from scratch. -> PixelWorldModel."""
    from trainer.world_model import PRESETS, TrainConfig, fit_world_model

    steps = recipe.refit_world_model_steps if init is not None else recipe.world_model_steps
    train = TrainConfig(
        steps=steps,
        batch_size=recipe.world_model_batch,
        warmup_steps=min(100, max(1, steps // 10)),
        checkpoint_every=checkpoint_every,
        log_every=min(log_every, steps),
        seed=recipe.seed,
    )
    config = _preset(PRESETS, recipe.world_model_preset, "world model")
    result = fit_world_model(
        episodes, out, config=config, train=train, finetune_from=init, resume=resume, on_log=on_log, progress=False
    )
    result.model.seed = recipe.seed  # the imagination's noise
    return result.model


def fit_reward_model_step(
    recipe: Recipe,
    episodes: Sequence[Any],
    world_model: WorldModel,
    out: Path,
    *,
    init: Any = None,
    on_log: Callable[[int, float], None] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """The success classifier on the snapshot's labelled episodes *and* the world model's replays of them, its
    threshold calibrated on held-out real and imagined episodes. -> (FrameRewardModel, calibration metrics)."""
    from trainer.reward_model import PRESETS, fit_with_imagination

    labelled = [e for e in episodes if e.success is not None]
    if not any(e.success for e in labelled) or all(e.success for e in labelled):
        have = f"{sum(bool(e.success) for e in labelled)} successes of {len(labelled)} labelled episodes"
        raise ValueError(
            f"the reward model needs labelled successes and failures ({have}); label them with `flywheel data label`"
        )
    steps = recipe.refit_reward_model_steps if init is not None else recipe.reward_model_steps
    config = replace(_preset(PRESETS, recipe.reward_model_preset, "reward model"), steps=steps, seed=recipe.seed)
    result = fit_with_imagination(labelled, out, config=config, world_model=world_model, init=init, on_log=on_log)
    return result.model, result.calibration


def _preset(presets: dict[str, Any], name: str, what: str) -> Any:
    if name not in presets:
        raise ValueError(f"{what}: unknown preset {name!r}; known: {', '.join(presets)}")
    return presets[name]


# -------------------------------------------------------------------------------------------- imagined GRPO


@dataclass(frozen=True)
class JudgeSplit:
    """The snapshot's episodes whose first frames GRPO trains from, and those held out to judge the candidate."""

    train: tuple[str, ...]
    held_out: tuple[str, ...]


def judge_split(episode_ids: Sequence[str], recipe: Recipe, store: Any = None) -> JudgeSplit:
    """Hold out ``judge_share`` of the episodes (at least one, never all), chosen by a hash of (seed, episode):
    the same episode stays held out whatever else the snapshot holds.

    With ``store``, an episode is known by what it recorded (``content_key``), not by its id, which carries the
    time it was recorded: the same seeded episodes recorded again (a demo run twice, a bench unit redone) give the
    same split, hence the same candidate. Without, by its id."""
    ids = sorted(set(episode_ids))
    if len(ids) < 2:
        raise ValueError(f"a cycle needs at least 2 episodes (one to train from, one to judge on), got {len(ids)}")
    name = {e: content_key(store, e) for e in ids} if store is not None else {e: e for e in ids}

    def key(e: str) -> str:
        return hashlib.sha256(f"{recipe.seed}:{name[e]}".encode()).hexdigest()

    ranked = sorted(ids, key=lambda e: (key(e), e))
    n = min(len(ids) - 1, max(1, round(recipe.judge_share * len(ids))))
    held = set(ranked[:n])
    return JudgeSplit(tuple(e for e in ids if e not in held), tuple(e for e in ids if e in held))


def content_key(store: Any, episode_id: str) -> str:
    """A digest of what an episode recorded (its robot, task, actions and first state), not of when."""
    info = store.info(episode_id)
    reader = store.open(episode_id)
    digest = hashlib.sha256(f"{info.robot_id}:{info.task}:{info.length}:".encode())
    digest.update(np.ascontiguousarray(reader.actions()).tobytes())
    digest.update(np.ascontiguousarray(reader.states()[:1]).tobytes())
    return digest.hexdigest()


def wmpo_config(recipe: Recipe) -> WMPOConfig:
    return WMPOConfig(
        grpo=recipe.grpo,
        iterations=recipe.iterations,
        kir_share=recipe.kir_share,
        deploy_members=recipe.deploy_members,
        deploy_temperature=recipe.deploy_temperature,
        seed=recipe.seed,
    )


def imagination_for(
    store: Any,
    task: str,
    world_model: WorldModel,
    reward_model: RewardModel,
    recipe: Recipe,
    horizon: int,
    camera: str | None,
    train_ids: Sequence[str],
) -> Imagination:
    """GRPO's stand-ins for the arm: first-frame starts (and keyframe starts, at ``kir_share``) from the training
    part of the snapshot only, and the imagined-proprio model fitted on it."""
    return build_imagination(
        StoreView(store, train_ids),
        task,
        world_model,
        reward_model,
        horizon,
        wmpo_config(recipe),
        camera,
        None,
        safety=recipe.safety,
    )


def improve(
    policy: TrainablePolicy,
    imagination: Imagination,
    recipe: Recipe,
    on_iteration: Callable[[int, dict[str, float]], None] | None = None,
    iterations: int | None = None,
    first_iteration: int = 0,
    on_draw: Callable[[int, int, dict[str, Any]], None] | None = None,
) -> list[dict[str, float]]:
    """Imagined GRPO on ``policy``, in place: ``iterations`` (default: the recipe's) updates. The policy's sampling
    and the starts drawn are seeded by (seed, first iteration), so the same recipe on the same episodes gives the
    same candidate wherever it runs (the Celery stage, the demo, the bench); a resumed stage is reseeded at the
    iteration it resumes from (and restarts the optimizer's moments: ``wmpo`` makes a fresh AdamW)."""
    torch.manual_seed(recipe.seed * 100_003 + first_iteration)
    imagination.sampler.reseed(recipe.seed * 100_003 + first_iteration)  # whatever drew from it before
    return wmpo(policy, imagination, wmpo_config(recipe), on_iteration, iterations=iterations, on_draw=on_draw)


def check_imagination(
    policy: TrainablePolicy,
    imagination: Imagination,
    starts: Sequence[StartState],
    store: Any,
    arm: Any,
    recipe: Recipe,
    horizon: int,
) -> Agreement | None:
    """Action-replay agreement of ``policy`` (the parent, before GRPO) in GRPO's own groups (its group size and
    sampling temperature) from the first ``recipe.agreement_starts`` of the held-out ``starts``, replayed on
    ``arm`` (a ``sim.env.MetaWorldArm`` of the task): ``trainer.agreement.measure``. None when nothing could be
    replayed (no start recorded its scene) or the recipe measures none."""
    if recipe.agreement_starts <= 0 or not starts:
        return None
    picked = list(starts)[: recipe.agreement_starts]
    g, t = recipe.grpo.group_size, recipe.grpo.temperature
    return measure_agreement(policy, imagination, picked, store, arm, t, g, horizon, seed=recipe.seed)


def imagination_trusted(agreement: Agreement | None, recipe: Recipe) -> tuple[bool, str]:
    """May GRPO run on this imagination? (Pure.) Yes when not measured or at least ``min_agreement``."""
    if agreement is None or recipe.min_agreement <= 0:
        return True, ""
    got = agreement.figures["outcome_agreement"]
    if got >= recipe.min_agreement:
        return True, ""
    return False, (
        f"imagination is not trusted: imagined outcomes agreed with the arm's on {got:.0%} of the replayed "
        f"trajectories, below min_agreement {recipe.min_agreement:.0%} ({agreement.line()}); no RL update was made"
    )


def weights_differ(a: Any, b: Any) -> bool:
    """Did GRPO change anything? (Two policies of one architecture.)"""
    sa, sb = a.state_dict(), b.state_dict()
    return any(not torch.equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------------------------------------------- judging


@dataclass(frozen=True)
class Comparison:
    """Candidate and parent on the same scenes (or starts) at one temperature."""

    where: str  # "imagined" | "sim"
    temperature: float
    candidate: Rate
    parent: Rate
    p_worse: float  # one-sided paired p-value: the candidate is worse
    p_better: float  # one-sided paired p-value: the candidate is better
    scenes: int  # scenes (sim) or held-out starts (imagined)

    @property
    def gain(self) -> float:
        return self.candidate.rate - self.parent.rate

    def line(self) -> str:
        return (
            f"{self.where} success at T={self.temperature:g}: candidate {self.candidate.percent()} vs parent "
            f"{self.parent.percent()} over {self.scenes} {'scenes' if self.where == 'sim' else 'held-out starts'} "
            f"(paired p_worse {self.p_worse:.3f}, p_better {self.p_better:.3f})"
        )

    def metrics(self, prefix: str) -> dict[str, float]:
        return {
            f"{prefix}success": self.candidate.rate,
            f"{prefix}ci95_low": self.candidate.low,
            f"{prefix}ci95_high": self.candidate.high,
            f"parent_{prefix}success": self.parent.rate,
            f"parent_{prefix}ci95_low": self.parent.low,
            f"parent_{prefix}ci95_high": self.parent.high,
            f"{prefix}gain": self.gain,
            f"{prefix}p_worse": self.p_worse,
            f"{prefix}p_better": self.p_better,
            f"{prefix}n": float(self.candidate.n),
        }


@dataclass(frozen=True)
class Verdict:
    """What the cycle measured of its candidate, and whether it may be promoted."""

    updated: bool
    promote: bool
    reason: str
    deploy: list[Comparison] = field(default_factory=list)  # at the deployment temperature: these decide
    sampling: list[Comparison] = field(default_factory=list)  # at the sampling temperature: reported only

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {"updated": float(self.updated), "promoted": float(self.promote)}
        for c in self.deploy:
            out.update(c.metrics(f"{c.where}_" if c.where != "imagined" else "imagined_"))
        for c in self.sampling:
            out.update(c.metrics(f"{c.where}_sampling_"))
        if self.deploy:
            out["deploy_temperature"] = self.deploy[0].temperature
        if self.sampling:
            out["sampling_temperature"] = self.sampling[0].temperature
        return {k: v for k, v in out.items() if not math.isnan(v)}


def imagined_outcomes(
    policy: TrainablePolicy,
    imagination: Imagination,
    starts: Sequence[StartState],
    temperature: float,
    group: int,
    seed: int,
) -> np.ndarray:
    """bool [starts, group]: success of ``group`` imagined rollouts of ``policy`` from each start. The world
    model's noise is seeded, so two policies judged with one seed meet the same imagined noise."""
    batch = imagination.imagine(policy, list(starts), temperature, group, seed)
    return (batch.finish_step >= 0).reshape(len(starts), group)


def held_out_starts(
    store: Any, task: str, split: JudgeSplit, horizon: int, world_model: WorldModel, camera: str | None
) -> list[StartState]:
    """WMPO first-frame starts of the held-out episodes."""
    return first_frame_starts(StoreView(store, split.held_out), task, horizon, context_len(world_model), camera)


def compare_imagined(
    candidate: TrainablePolicy,
    parent: TrainablePolicy,
    imagination: Imagination,
    starts: Sequence[StartState],
    temperature: float,
    recipe: Recipe,
) -> Comparison:
    c = imagined_outcomes(candidate, imagination, starts, temperature, recipe.judge_group, recipe.seed)
    p = imagined_outcomes(parent, imagination, starts, temperature, recipe.judge_group, recipe.seed)
    d = c.mean(axis=1) - p.mean(axis=1)  # per start
    return Comparison(
        where="imagined",
        temperature=temperature,
        candidate=wilson(int(c.sum()), c.size),
        parent=wilson(int(p.sum()), p.size),
        p_worse=sign_flip(d, alternative="less"),
        p_better=sign_flip(d, alternative="greater"),
        scenes=len(starts),
    )


def compare_sim(candidate: np.ndarray, parent: np.ndarray, temperature: float) -> Comparison:
    """Per-scene outcomes (bool [n] each, the same scenes) -> the paired comparison (exact McNemar)."""
    t = mcnemar(candidate, parent)
    return Comparison(
        where="sim",
        temperature=temperature,
        candidate=wilson(int(np.sum(candidate)), len(candidate)),
        parent=wilson(int(np.sum(parent)), len(parent)),
        p_worse=t.p_a_less,
        p_better=t.p_a_greater,
        scenes=len(candidate),
    )


@dataclass(frozen=True)
class SimJudge:
    """Where a simulator stands in for the arm: judge on ``scenes`` seeded scenes of ``task``."""

    task: str
    scenes: int
    first_seed: int = VALIDATION_SEED  # disjoint from the bench's evaluation scenes (trainer.evaluate.EVAL_SEED)
    max_steps: int | None = None
    pool: Any = None  # trainer.sim_grpo.ArmPool to borrow arms from
    parent_outcomes: dict[float, np.ndarray] = field(default_factory=dict)  # {temperature: bool [scenes]}, cached
    safety: str | None = "sim"  # the robot's safety preset (the recipe's)

    def outcomes(self, policy: TrainablePolicy, temperature: float) -> np.ndarray:
        from trainer.evaluate import scene_outcomes

        seeds = range(self.first_seed, self.first_seed + self.scenes)
        return scene_outcomes(
            policy, self.task, seeds, temperature, max_steps=self.max_steps, pool=self.pool, safety=self.safety
        )


def judge(
    candidate: TrainablePolicy,
    parent: TrainablePolicy,
    imagination: Imagination,
    starts: Sequence[StartState],
    recipe: Recipe,
    sim: SimJudge | None = None,
    updated: bool | None = None,
    progress: Callable[[str], None] | None = None,
    sampling: bool = True,
) -> Verdict:
    """Candidate against parent at the deployment temperature (decisive) and, with ``sampling``, at the sampling
    temperature (reported only; the paper bench measures that on its evaluation scenes instead); see the module
    docstring for the rule."""
    updated = weights_differ(candidate, parent) if updated is None else updated
    deploy_t, sampling_t = recipe.deploy_temperature, recipe.grpo.temperature
    deploy: list[Comparison] = []
    at_sampling: list[Comparison] = []
    for temperature, into in ((deploy_t, deploy), (sampling_t, at_sampling)):
        if starts:
            into.append(compare_imagined(candidate, parent, imagination, starts, temperature, recipe))
            if progress:
                progress(into[-1].line())
        if sim is not None and sim.scenes > 0:
            parent_out = sim.parent_outcomes.get(temperature)
            if parent_out is None:
                parent_out = sim.parent_outcomes[temperature] = sim.outcomes(parent, temperature)
            into.append(compare_sim(sim.outcomes(candidate, temperature), parent_out, temperature))
            if progress:
                progress(into[-1].line())
        if deploy_t == sampling_t or not sampling:
            break
    if deploy_t == sampling_t:
        at_sampling = list(deploy)
    promote, reason = decide(updated, deploy, recipe.judge_alpha)
    return Verdict(updated=updated, promote=promote, reason=reason, deploy=deploy, sampling=at_sampling)


def decide(updated: bool, deploy: Sequence[Comparison], alpha: float) -> tuple[bool, str]:
    """The promotion rule on the deployment-temperature comparisons (pure; see the module docstring)."""
    if not updated:
        return False, "GRPO made no update (every imagined group was filtered): the candidate is the parent"
    if not deploy:
        return False, "nothing to judge the candidate on (no held-out start and no simulator)"
    sim = [c for c in deploy if c.where == "sim"]
    for c in deploy:
        if c.p_worse < alpha:
            return False, f"the candidate is worse: {c.line()}"
        decides = c.where == "sim" or not sim  # the simulator where there is one, else imagination
        if decides and c.gain < 0:
            return False, f"the candidate loses: {c.line()}"
    best = sim[0] if sim else deploy[0]
    return True, f"the candidate does not lose: {best.line()}"
