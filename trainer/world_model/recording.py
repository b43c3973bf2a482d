"""Record a mixture of successful and failed episodes into the store: the scripted expert with action noise.

WMPO fits its world model and reward model on the policy's own rollouts, successes *and* failures (§3.2–3.3).
Before a policy exists, the scripted expert (``sim.experts``) with Gaussian action noise and a random step
budget gives the same mixture: low noise succeeds, high noise or a short budget fails. The loop records what a
robot records (``data_store`` convention): step t holds the frame seen at tick t and the action sent after it;
the episode ends at success (the success frame itself is not recorded) or at the step budget.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class NoisyExpertPlan:
    noise_levels: Sequence[float] = (0.0, 0.3, 0.6, 1.0, 1.5)  # cycled over episodes
    min_steps: int = 40  # step budget drawn uniformly from [min_steps, max_steps]
    max_steps: int = 100
    image_size: tuple[int, int] = (64, 64)


def record_noisy_expert(
    store: Any,  # data_store.episodes.EpisodeStore
    task: str,
    episodes: int,
    plan: NoisyExpertPlan = NoisyExpertPlan(),
    *,
    seed: int = 0,
    policy_version: str = "scripted-noisy",
    on_episode: Callable[[int, bool, int], None] | None = None,
) -> list[str]:
    """Record ``episodes`` episodes of ``task``; -> their episode ids."""
    import numpy as np

    from sim.env import MetaWorldArm
    from sim.experts import ScriptedExpert

    ids: list[str] = []
    rng = np.random.default_rng(seed)
    with MetaWorldArm(task, image_size=plan.image_size, seed=seed) as arm:
        for i in range(episodes):
            noise = float(plan.noise_levels[i % len(plan.noise_levels)])
            budget = int(rng.integers(plan.min_steps, plan.max_steps + 1))
            expert = ScriptedExpert(task, noise=noise, seed=seed + i)
            obs = arm.reset(seed + i)
            meta = {"seed": seed + i, "noise": noise, "max_steps": budget}
            with store.create(
                arm.spec,
                task=task,
                instruction=arm.instruction,
                robot_id="expert-noisy",
                policy_version=policy_version,
                meta=meta,
            ) as w:
                for _ in range(budget):
                    action = expert.act(arm.raw_observation())
                    w.append(obs, action)
                    obs = arm.step(action)
                    if arm.success():
                        break
                info = w.finish(arm.success(), reason="success" if arm.success() else "max_steps")
            ids.append(info.episode_id)
            if on_episode:
                on_episode(i, bool(arm.success()), info.length)
    return ids
