"""The flywheel's recipe: every setting of one cycle, in one typed configuration with named presets.

A cycle is snapshot → world model → reward model → imagined GRPO (WMPO, + WoVR KIR) → judge → register
(``trainer/cycle.py`` holds the steps). The nightly Celery stages, ``flywheel train cycle``, ``flywheel demo``,
``flywheel bench paper`` and ``flywheel bench lifelong`` all build a :class:`Recipe` from :data:`RECIPES` and call
the same steps with it. There is no other copy of these numbers: when a benchmark finds a better setting, the
preset here changes.

Two temperatures, never confused:

- ``grpo.temperature``: the *sampling* temperature of imagined rollouts, and of the log-probs in the loss
  (WMPO/WoVR: 1.6; see :data:`SAMPLING_TEMPERATURE` for ours).
- ``deploy_temperature``: what the robot runs (``robot_agent/loop.py``: 0, deterministic, the median bin of each
  action token, unless its operator sets another). Every success figure that decides anything (promotion, the
  bench's table, the demo's report) is measured at this temperature; the sampling temperature is a second column.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace
from typing import Any

from trainer.grpo import PRESETS as GRPO_PRESETS
from trainer.grpo import GRPOConfig

# What a robot runs unless its operator says otherwise (robot_agent/loop.py, ``temperature=0.0``: deterministic,
# the median action bin, vla.model.median_tokens).
DEPLOY_TEMPERATURE = 0.0

# Sampling temperature of imagined GRPO. Both papers sample at 1.6 (WMPO, arXiv 2511.09515, Table 4; WoVR,
# arXiv 2602.13977) with a 7B OpenVLA-OFT whose token distributions are sharp; our 0.4 M-parameter SFT policy's
# are flatter: at 1.6 the `reduced` base closed the drawer in 3 of 64 episodes (5%), at 1.3 in 7 of 20 (35%), at
# 1.0 in 18 of 20. 1.3 puts the base where WMPO's bases are (19.5–46.9%, Table 1), so that groups of 8 carry a
# learning signal.
SAMPLING_TEMPERATURE = 1.3

# Scene seeds, disjoint: demonstrations 0.., real rollouts of the bench 30_000.. (trainer/bench/paper.py),
# validation (choosing the base's best temperature) 90_000.., evaluation 100_000.. (trainer/evaluate.py).
VALIDATION_SEED = 90_000


@dataclass(frozen=True)
class Recipe:
    """One cycle's settings. Sizes are for a 2-core CPU unless a preset says otherwise."""

    # world model (WMPO §3.2; WoVR, arXiv 2602.13977): trainer/world_model PRESETS, training steps and batch
    world_model_preset: str = "small"
    world_model_steps: int = 3000
    world_model_batch: int = 8
    # reward model (WMPO §3.3): trainer/reward_model PRESETS; trained on the real frames *and* on the world
    # model's open-loop replays of the same episodes (trained on real frames only it scored <= 0.001 on every
    # imagined success, so no group ever carried a signal: docs/rl.md)
    reward_model_preset: str = "small"
    reward_model_steps: int = 400
    # co-evolution (WoVR PACE) and every later cycle: models fine-tuned from the previous cycle's, this many steps
    refit_world_model_steps: int = 800
    refit_reward_model_steps: int = 400
    # imagined GRPO (trainer/grpo.py): the `cpu` preset at our sampling temperature, at most 2 draws per update
    grpo: GRPOConfig = field(
        default_factory=lambda: replace(GRPO_PRESETS["cpu"], temperature=SAMPLING_TEMPERATURE, max_draws=2)
    )
    iterations: int = 8  # GRPO updates per cycle
    # rollouts of each imagined group of G that act as the robot does (at the deployment temperature) instead of
    # sampling: they give the group a member whose success is the deployed behaviour's, so GRPO raises the chunks
    # the robot would take where they succeed and lowers them where they fail (a self-critical anchor; see docs/rl.md)
    deploy_members: int = 0
    kir_share: float = 0.0  # share of keyframe starts (WoVR KIR); 0: WMPO's first frames only
    horizon: int | None = None  # imagined episode length; None: the task's step budget (WMPO: the task's max_steps)
    # judging the candidate against its parent, both at the deployment temperature
    deploy_temperature: float = DEPLOY_TEMPERATURE
    judge_share: float = 0.25  # share of the snapshot's first frames held out of GRPO, imagined to judge
    judge_group: int = 4  # imagined rollouts per held-out start and policy
    judge_alpha: float = 0.05  # level of the one-sided paired tests that can refuse a candidate
    # before GRPO, where a simulator task is configured: the parent's imagined groups from this many held-out first
    # frames replayed action for action on the simulated arm (trainer/agreement.py; 0: not measured). With
    # ``min_agreement`` > 0, a cycle whose outcome agreement falls below it makes no RL update and says so.
    agreement_starts: int = 8
    min_agreement: float = 0.0
    # the robot's safety filter (robot_agent.safety.PRESETS; "sim": the simulated arm's, what its robot agent runs):
    # imagination and simulated evaluation filter every action as the robot's loop does, whose max-delta limit
    # changes what the arm does. A physical arm's cycle config names its robot's preset; None: no filter.
    safety: str | None = "sim"
    seed: int = 0  # world model, reward model and RL

    def __post_init__(self) -> None:
        if self.deploy_temperature < 0:
            raise ValueError(f"deploy_temperature must be >= 0, got {self.deploy_temperature}")
        if not 0.0 <= self.kir_share <= 1.0:
            raise ValueError(f"kir_share must be in [0, 1], got {self.kir_share}")
        if not 0.0 < self.judge_share < 1.0:
            raise ValueError(f"judge_share must be in (0, 1), got {self.judge_share}")
        if self.agreement_starts < 0 or not 0.0 <= self.min_agreement <= 1.0:
            raise ValueError(
                f"agreement_starts must be >= 0 and min_agreement in [0, 1], got {self.agreement_starts}, "
                f"{self.min_agreement}"
            )
        if self.iterations < 1 or self.judge_group < 1:
            raise ValueError("iterations and judge_group must be >= 1")
        if not 0 <= self.deploy_members < self.grpo.group_size:
            raise ValueError(
                f"deploy_members must be in [0, group size {self.grpo.group_size}), got {self.deploy_members}"
            )

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["grpo"]["betas"] = list(self.grpo.betas)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Recipe:
        return with_overrides(cls(), d)


def with_overrides(recipe: Recipe, overrides: dict[str, Any]) -> Recipe:
    """``recipe`` with some fields changed; ``grpo`` takes a dict of GRPOConfig fields. ValueError naming an unknown
    field (a typo in a cycle config must not be silently ignored)."""
    known = {f.name for f in dataclasses.fields(Recipe)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown recipe setting(s) {unknown}; known: {sorted(known)}")
    changes = dict(overrides)
    if "grpo" in changes and isinstance(changes["grpo"], dict):
        g = dict(changes["grpo"])
        grpo_known = {f.name for f in dataclasses.fields(GRPOConfig)}
        bad = sorted(set(g) - grpo_known)
        if bad:
            raise ValueError(f"unknown GRPO setting(s) {bad}; known: {sorted(grpo_known)}")
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        changes["grpo"] = replace(recipe.grpo, **g)
    return replace(recipe, **changes)


RECIPES: dict[str, Recipe] = {
    # the nightly cycle on a 2-core CPU, `flywheel demo`, and every row of `flywheel bench paper` (the bench's
    # variants change kir_share and nothing else)
    "default": Recipe(),
    # tests and `--quick` runs: every step at toy sizes
    "quick": Recipe(
        world_model_preset="tiny",
        world_model_steps=6,
        world_model_batch=2,
        reward_model_preset="tiny",
        reward_model_steps=10,
        refit_world_model_steps=4,
        refit_reward_model_steps=5,
        grpo=replace(GRPO_PRESETS["tiny"], temperature=SAMPLING_TEMPERATURE),
        iterations=1,
        horizon=16,
        judge_group=2,
        agreement_starts=2,
    ),
}


def recipe(name: str = "default", **overrides: Any) -> Recipe:
    """A named preset with overrides. ValueError naming the presets when ``name`` is not one."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")
    return with_overrides(RECIPES[name], overrides)
