"""Evaluate a policy on the simulated arm through the real robot-agent loop.

``evaluate_policy`` runs seeded episodes of one Meta-World task with ``robot_agent.loop.run_episode``
(the same loop, slot and safety filter a robot runs), optionally recording each episode into an
episode store, and reports the success rate with its Wilson 95% interval.

Seeds: evaluation starts at ``EVAL_SEED`` = 100 000 by default; demonstrations and RL scenes use
seeds far below it (``trainer.base_table`` records demos from seed 0), so test scenes are unseen.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

EVAL_SEED = 100_000


@dataclass(frozen=True)
class EvalResult:
    task: str
    successes: int
    episodes: int
    rate: float
    ci95: tuple[float, float]  # Wilson score interval
    mean_steps: float
    seed: int = EVAL_SEED
    temperature: float = 0.0
    policy_version: str = "unknown"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci95"] = [round(self.ci95[0], 4), round(self.ci95[1], 4)]
        d["rate"] = round(self.rate, 4)
        d["mean_steps"] = round(self.mean_steps, 2)
        return d


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score 95% interval for a binomial proportion (sound at 0/n and n/n, unlike the normal one)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def run_seeded_episodes(
    robot: Any,
    policy: Any,
    seeds: Iterable[int],
    *,
    version: str | None = None,
    store: Any = None,
    temperature: float = 0.0,
    max_steps: int | None = None,
    robot_id: str = "sim-eval",
    meta: dict[str, Any] | None = None,
    progress: Any = None,
) -> list[Any]:
    """Run one episode per seed with ``robot_agent.loop.run_episode``; record into ``store`` when given.

    The instruction of each episode is the task's phrasing for its seed, set on the robot so the
    policy sees it and the recording names it. ``progress``: a ``(rich Progress, task id)`` to advance.
    Returns the ``EpisodeResult`` of every episode.
    """
    from robot_agent.loop import run_episode
    from robot_agent.slot import PolicySlot

    version = version or str(getattr(policy, "version", "unknown"))
    slot = PolicySlot(policy, version)
    task = robot.task
    results = []
    for seed in seeds:
        instruction = task.instruction_for(seed)
        robot.instruction = instruction
        writer = None
        if store is not None:
            writer = store.create(
                robot.spec,
                task=task.name,
                instruction=instruction,
                robot_id=robot_id,
                policy_version=version,
                meta={"seed": int(seed), "temperature": temperature, **(meta or {})},
            )
        results.append(
            run_episode(robot, slot, max_steps=max_steps, seed=int(seed), writer=writer, temperature=temperature)
        )
        if progress is not None:
            bar, job = progress
            done = sum(1 for r in results if r.success)
            bar.update(job, advance=1, note=f"{task.name} {done}/{len(results)}")
    return results


def evaluate_policy(
    policy: Any,
    task: str,
    episodes: int,
    seed: int = EVAL_SEED,
    temperature: float = 0.0,
    store: Any = None,
    max_steps: int | None = None,
    *,
    progress: bool | None = None,
) -> EvalResult:
    """Success rate of ``policy`` on ``episodes`` seeded episodes (seeds ``seed .. seed+episodes-1``) of ``task``.

    Runs the real robot-agent loop on ``make_robot("sim", task=task)``; ``store`` records every
    episode; ``max_steps`` defaults to the task's. ``progress`` None shows a bar when stdout is a terminal.
    """
    import sys

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from robot_agent.robots.base import make_robot
    from sim.tasks import resolve_task

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    show = sys.stdout.isatty() if progress is None else progress
    task_name = resolve_task(task).name
    robot = make_robot("sim", task=task_name, max_steps=max_steps)
    try:
        robot.connect()
        columns = (
            TextColumn("eval"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, disable=not show, transient=True) as bar:
            job = bar.add_task("eval", total=episodes, note=task)
            results = run_seeded_episodes(
                robot,
                policy,
                range(seed, seed + episodes),
                store=store,
                temperature=temperature,
                max_steps=max_steps,
                meta={"purpose": "evaluation"},
                progress=(bar, job),
            )
    finally:
        robot.disconnect()
    successes = sum(1 for r in results if r.success)
    return EvalResult(
        task=task_name,
        successes=successes,
        episodes=episodes,
        rate=successes / episodes,
        ci95=wilson_interval(successes, episodes),
        mean_steps=sum(r.steps for r in results) / episodes,
        seed=seed,
        temperature=temperature,
        policy_version=str(getattr(policy, "version", "unknown")),
    )
