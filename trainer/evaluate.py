"""Evaluate a policy on the simulated arm: per seeded scene, did it succeed?

- ``scene_outcomes`` (what the cycle's judge and the benches use): the outcome of each seeded scene, ``lockstep``
  episodes at a time with one batched ``policy.sample`` per chunk (``trainer.sim_grpo.run_lockstep``): the same
  policy call the robot makes (``act`` is ``sample`` of one observation), without the robot agent's loop, slot and
  safety filter around it; on a 2-core CPU ~2.5× faster than one episode at a time. A test checks that it gives
  the robot-agent loop's outcomes scene by scene at temperature 0.
- ``evaluate_policy`` runs seeded episodes through the real robot-agent loop (``robot_agent.loop.run_episode``:
  the loop, slot and safety filter a robot runs), optionally recording each episode, and reports the success
  rate with its Wilson 95% interval.

Seeds: evaluation starts at ``EVAL_SEED`` = 100 000 by default; demonstrations and RL scenes use
seeds far below it (``trainer.bench.base_table`` records demos from seed 0), so test scenes are unseen.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from data_store.stats import wilson
from vla.protocol import Policy, TrainablePolicy

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


def wilson_interval(successes: int, n: int) -> tuple[float, float]:
    """Wilson score 95% interval (``data_store.stats.wilson``); (0, 1) when there is nothing to count."""
    if n == 0:
        return (0.0, 1.0)
    r = wilson(successes, n)
    return (r.low, r.high)


def scene_outcomes(
    policy: TrainablePolicy,
    task: str,
    seeds: Sequence[int] | range,
    temperature: float,
    *,
    max_steps: int | None = None,
    pool: Any = None,
    store: Any = None,
    robot_id: str = "eval",
    lockstep: int = 10,
    safety: str | None = "robot",
) -> np.ndarray:
    """bool [len(seeds)]: did ``policy`` succeed on each seeded scene of ``task`` at ``temperature``?

    ``lockstep`` episodes at a time; arms come from ``pool`` (a ``trainer.sim_grpo.ArmPool``, kept open there) or
    are made here and closed. With ``store``, every episode is recorded (robot ``robot_id``). Every action goes
    through the robot's safety filter (``safety``: "robot", the simulated robot's own preset; see
    ``trainer.sim_grpo.run_lockstep``)."""
    from trainer.sim_grpo import ArmPool, run_lockstep

    seeds = list(seeds)
    out = np.zeros(len(seeds), dtype=bool)
    if not seeds:
        return out
    with contextlib.ExitStack() as stack:
        if pool is None:
            pool = stack.enter_context(ArmPool())
        arms = pool.get(task, min(lockstep, len(seeds)), max_steps)
        for start in range(0, len(seeds), len(arms)):
            part = seeds[start : start + len(arms)]
            r = run_lockstep(policy, arms[: len(part)], part, temperature, store, robot_id=robot_id, safety=safety)
            out[start : start + len(part)] = r.success.numpy() > 0
    return out


def run_seeded_episodes(
    robot: Any,
    policy: Policy,
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
    policy: Policy,
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

    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from data_store.progress import progress_bar
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
        with progress_bar(*columns, disable=not show, transient=True) as bar:
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
