"""The baseline: the same GRPO (``trainer/grpo.py``) run directly in the simulator, on a budget of P real episodes.

WMPO's "GRPO (real env)" row (arXiv 2511.09515, Table 1 and App. B): every trajectory is a real (here: simulated)
episode, so a budget of P = 128 episodes buys P / G = 16 groups. One update at WMPO's batch (64 initial
states × 8) would need 512; they therefore also ran a batch of 8 trajectories with the learning rate
scaled by 1/8 and reported the better of the two. :func:`sim_grpo_variants` gives both settings at our
scale; the bench runs both and reports the better.

Groups of G episodes start from the same seeded scene and run in lockstep (one ``policy.sample`` for the
G observations per chunk); an episode ends at the simulator's first success or at the task's horizon.
Dynamic sampling is on as in WMPO, and a filtered group's episodes still count against the budget: they
were run. Every episode can be written to the store (``store=``), as the robot would.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from data_store.schema import Observation
from trainer.grpo import GRPOConfig, Rollouts, make_optimizer, train_grpo
from vla.protocol import TrainablePolicy


class ArmPool:
    """Simulated arms kept open between uses, per (task, episode length).

    Building a ``MetaWorldArm`` costs ~1.3 s of CPU (Meta-World's MT1 draws 50 task variations, MuJoCo
    compiles the model, the renderer makes an EGL context): more than a 100-step episode that renders one
    frame in eight. Every user resets an arm to its own scene seed, so a reused arm is as good as a new one."""

    def __init__(self) -> None:
        self._arms: dict[tuple[str, int | None], list[Any]] = {}

    def get(self, task: str, n: int, max_steps: int | None = None) -> list[Any]:
        """n arms of ``task`` (made on first use)."""
        from sim.env import MetaWorldArm

        arms = self._arms.setdefault((task, max_steps), [])
        while len(arms) < n:
            arms.append(MetaWorldArm(task, max_steps=max_steps))
        return arms[:n]

    def close(self) -> None:
        for arms in self._arms.values():
            for arm in arms:
                arm.close()
        self._arms.clear()

    def __enter__(self) -> ArmPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class SimGroupSampler:
    """Draws GRPO groups from the simulator: G lockstep episodes per seeded scene, within a budget."""

    policy: TrainablePolicy
    task: str
    group_size: int
    budget: int  # P real episodes in all
    temperature: float = 1.6
    seed: int = 10_000  # scenes of the RL stage: disjoint from evaluation seeds
    max_steps: int | None = None
    store: Any = None  # an EpisodeStore to record every episode in, or None
    pool: ArmPool | None = None  # arms to borrow (kept open for the next user); None: own arms, closed by close()
    safety: str | None = "robot"  # the robot's safety filter (see run_lockstep)

    def __post_init__(self) -> None:
        self._own = self.pool is None
        if self.pool is None:
            self.pool = ArmPool()
        self.arms = self.pool.get(self.task, self.group_size, self.max_steps)
        self.used = 0
        self.successes = 0
        self._scene = self.seed

    @property
    def left(self) -> int:
        return self.budget - self.used

    def close(self) -> None:
        if self._own and self.pool is not None:
            self.pool.close()

    def __call__(self, n_groups: int) -> Rollouts:
        n_groups = max(0, min(n_groups, self.left // self.group_size))
        if n_groups == 0:
            raise BudgetSpent(f"real-episode budget of {self.budget} spent")
        parts = [self._group() for _ in range(n_groups)]
        return Rollouts.concat(parts)

    def _group(self) -> Rollouts:
        scene = self._scene
        self._scene += 1
        rollouts = run_lockstep(
            self.policy,
            self.arms,
            [scene] * self.group_size,
            self.temperature,
            self.store,
            robot_id="sim-grpo",
            safety=self.safety,
        )
        self.used += self.group_size
        self.successes += int(rollouts.success.sum())
        return rollouts


@torch.no_grad()
def run_lockstep(
    policy: TrainablePolicy,
    arms: list[Any],  # MetaWorldArm, one per episode
    scenes: list[int],  # the seed of each arm's scene
    temperature: float,
    store: Any = None,
    robot_id: str = "sim",
    safety: str | None = "robot",
) -> Rollouts:
    """len(arms) simulated episodes in lockstep, one batched ``policy.sample`` per chunk. Shapes: N arms, C chunks.

    Every action goes through the robot's own safety filter first (``robot_agent.safety``, the simulated robot's
    preset, one filter per episode), exactly as the robot agent's loop sends it: its max-delta limit changes what
    the arm does (a gripper command from -0.8 to +0.8 takes two steps). ``safety``: "robot" (that preset), another
    preset name, or None (no filter). An episode ends at the simulator's first success, the arm's horizon, or a
    stop from the filter; its later chunks are masked. With ``store``, each episode is recorded as the robot records
    it (step t: the observation at tick t and the filtered action sent after it), its scene seed in ``meta``."""
    n, k = len(arms), int(policy.chunk_size)
    filters = [safety_filter(arm.spec, safety) for arm in arms]
    obs = [arm.reset(scene) for arm, scene in zip(arms, scenes, strict=True)]
    horizon = max(arm.max_steps for arm in arms)
    writers = None
    if store is not None:
        version = getattr(policy, "version", "unknown")
        writers = [
            store.create(
                arm.spec,
                task=arm.task.name,
                instruction=arm.instruction,
                robot_id=robot_id,
                policy_version=version,
                meta={"seed": int(scene), "temperature": temperature},
            )
            for arm, scene in zip(arms, scenes, strict=True)
        ]
    done = np.zeros(n, dtype=bool)
    success = np.zeros(n, dtype=bool)
    seen: list[list[Observation]] = [[] for _ in range(n)]
    tokens, logps, masks = [], [], []
    steps = 0
    while not done.all() and steps < horizon:
        actions, token_ids, logprob = policy.sample(obs, temperature)
        tokens.append(token_ids.long())
        logps.append(logprob.float())
        masks.append(torch.as_tensor(~done))
        for i in range(n):
            seen[i].append(obs[i])
        for i, arm in enumerate(arms):
            if done[i]:
                continue
            for t in range(k):
                action = np.asarray(actions[i, t], np.float32)
                f = filters[i]
                if f is not None:
                    now = float(steps + t)  # the loop's clock in simulation: the action is due when issued
                    state = arm.raw_observation()[:4].astype(np.float32)  # the observation's proprio, unrendered
                    verdict = f.filter(action, state=state, now=now, issued_at=now)
                    if verdict.stop is not None:
                        done[i] = True
                        break
                    action = verdict.action
                if writers is not None:
                    writers[i].append(obs[i], action)
                arm.advance(action)  # renders only when a frame is looked at (recorded or acted on)
                if writers is not None:
                    obs[i] = arm.observe()
                if arm.success():
                    success[i] = done[i] = True
                    break
                if arm.truncated:
                    done[i] = True
                    break
            obs[i] = arm.observe()
        steps += k
    if writers is not None:
        for i, w in enumerate(writers):
            w.finish(bool(success[i]), "success" if success[i] else "horizon")
    return Rollouts(
        observations=seen,
        token_ids=torch.stack(tokens, dim=1),
        old_logprob=torch.stack(logps, dim=1),
        mask=torch.stack(masks, dim=1),
        success=torch.as_tensor(success, dtype=torch.float32),
        group_size=n,
        info={"source": "simulator"},
    )


def safety_filter(spec: Any, safety: str | None) -> Any:
    """A fresh ``robot_agent.safety.SafetyFilter`` for one simulated episode: "robot" is the simulated robot's own
    preset (``robot_agent.robots.sim.SimRobot.safety_preset``), any other name a preset; None: no filter."""
    if safety is None:
        return None
    from robot_agent.robots.sim import SimRobot
    from robot_agent.safety import SafetyConfig, SafetyFilter

    return SafetyFilter(SafetyConfig.preset(SimRobot.safety_preset if safety == "robot" else safety), spec)


class BudgetSpent(RuntimeError):
    """The real-episode budget is used up."""


def sim_grpo_variants(cfg: GRPOConfig, budget: int) -> dict[str, GRPOConfig]:
    """The two settings of WMPO App. B at our scale: our usual batch, and a batch of one group with lr/batch."""
    groups = max(1, budget // cfg.group_size)
    big = replace(cfg, groups_per_batch=min(cfg.groups_per_batch, groups), max_draws=1)
    small = replace(cfg, groups_per_batch=1, lr=cfg.lr / max(1, cfg.groups_per_batch), max_draws=1)
    return {"batch": big, "small_batch_lr_scaled": small}


def train_sim_grpo(
    policy: TrainablePolicy,
    task: str,
    cfg: GRPOConfig,
    budget: int,
    seed: int = 10_000,
    store: Any = None,
    on_iteration: Any = None,
    max_steps: int | None = None,
    pool: ArmPool | None = None,
    safety: str | None = "robot",
) -> tuple[list[dict[str, float]], int]:
    """GRPO in the simulator until ``budget`` real episodes are spent. Returns (history, episodes used).

    ``max_draws`` is 1 here: refilling a filtered batch costs real episodes, so it spends the budget
    faster instead of buying more signal (the refill is what WMPO's imagination makes free)."""
    cfg = replace(cfg, max_draws=1)
    sampler = SimGroupSampler(
        policy,
        task,
        cfg.group_size,
        budget,
        cfg.temperature,
        seed=seed,
        max_steps=max_steps,
        store=store,
        pool=pool,
        safety=safety,
    )
    history: list[dict[str, float]] = []
    optimizer = make_optimizer(policy, cfg)  # one AdamW across iterations
    try:
        while sampler.left >= cfg.group_size:
            try:
                history += train_grpo(policy, sampler, cfg, 1, on_iteration, optimizer)
            except BudgetSpent:
                break
    finally:
        sampler.close()
    return history, sampler.used
