"""The base-policy table: success of one multi-task, language-conditioned policy vs demonstrations per task.

For each N in ``demos``: N scripted-expert demonstrations per task (recorded through the robot-agent
loop into an episode store, Gaussian action noise σ), one ``VLAPolicy`` trained by SFT on all tasks
together, then ``evaluate_policy`` on ``episodes`` seeded scenes per task (seeds from 100 000, disjoint
from the demos' seeds 0, 1, ...). Prints one JSON line per (task, N) and one summary line per N.

Demonstrations are nested: the N=5 set is the first 5 successful demos of the N=25 set, so the rows
differ only in how much data the policy saw. Every N trains the same number of steps.

Where this departs from WMPO (arXiv 2511.09515): their base policy is OpenVLA-OFT SFT on 300 demos per
MimicGen task and lands at 19.5–46.9% success (Table 1); here a ~0.4 M-parameter policy trained from scratch on a
CPU. The point is the same: a base that is neither hopeless nor solved, for the flywheel to improve.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.evaluate import EVAL_SEED, evaluate_policy, run_seeded_episodes

# Tasks whose key objects are large at 64×64 in the sim's default corner4 view (sim/tasks.py), from
# near-solved to hard for a small policy, so the table shows the range.
DEFAULT_TASKS = ("drawer-close", "window-open", "drawer-open", "button-press-topdown")


@dataclass(frozen=True)
class BaseTableConfig:
    tasks: tuple[str, ...] = DEFAULT_TASKS
    demos: tuple[int, ...] = (5, 10, 25)
    episodes: int = 50  # evaluation episodes per task
    preset: str = "small"
    steps: int = 600  # SFT steps for every N
    batch_size: int = 32
    noise: float = 0.1  # scripted expert's action noise σ (in [-1, 1] action units)
    demo_seed: int = 0
    eval_seed: int = EVAL_SEED
    seed: int = 0


def record_demonstrations(store: Any, task: str, n: int, *, noise: float, first_seed: int = 0) -> list[str]:
    """Ids of the first ``n`` successful scripted-expert episodes of ``task`` in ``store``, recording more if needed.

    Demos go through the robot-agent loop (``run_seeded_episodes``) with seeds ``first_seed, first_seed+1, ...``;
    a failed demo is kept in the store (labelled false) and skipped. Gives up after 3n attempts.
    """
    from robot_agent.policies import load_policy
    from robot_agent.robots.base import make_robot

    def demos() -> list[Any]:
        found = store.episodes(task=task, success=True, policy_version="scripted")
        return sorted((i for i in found if i.meta.get("purpose") == "demo"), key=lambda i: int(i.meta["seed"]))

    have = demos()
    if len(have) < n:
        tried = {
            int(i.meta["seed"])
            for i in store.episodes(task=task, policy_version="scripted")
            if i.meta.get("purpose") == "demo"
        }
        robot = make_robot("sim", task=task)
        try:
            robot.connect()
            expert = load_policy("scripted", robot=robot, noise=noise, seed=first_seed)
            seed = first_seed
            while len(have) < n and seed < first_seed + 3 * n:
                if seed not in tried:
                    run_seeded_episodes(
                        robot,
                        expert,
                        [seed],
                        store=store,
                        robot_id="sim-demo",
                        meta={"purpose": "demo", "noise": noise},
                    )
                seed += 1
                have = demos()
        finally:
            robot.disconnect()
    if len(have) < n:
        raise RuntimeError(f"{task}: only {len(have)} of {n} scripted demos succeeded")
    return [i.episode_id for i in have[:n]]


def run_base_table(
    cfg: BaseTableConfig, out: str | Path, *, emit: Callable[[dict[str, Any]], None] = print, progress: bool = False
) -> list[dict[str, Any]]:
    """Run the table; ``emit`` gets each JSON row as a dict. Artifacts land in ``out/policy-N{n}``."""
    from data_store.episodes import EpisodeStore
    from trainer.sft import SFTConfig, train_sft

    out = Path(out)
    store = EpisodeStore(out / "demos")
    t0 = time.perf_counter()
    demo_ids = {
        task: record_demonstrations(store, task, max(cfg.demos), noise=cfg.noise, first_seed=cfg.demo_seed)
        for task in cfg.tasks
    }
    emit(
        {
            "name": "base_table.demos",
            "tasks": list(cfg.tasks),
            "per_task": max(cfg.demos),
            "noise": cfg.noise,
            "seconds": round(time.perf_counter() - t0, 1),
        }
    )
    rows: list[dict[str, Any]] = []
    for n in sorted(cfg.demos):
        ids = tuple(i for task in cfg.tasks for i in demo_ids[task][:n])
        sft = SFTConfig(
            preset=cfg.preset,
            steps=cfg.steps,
            batch_size=cfg.batch_size,
            seed=cfg.seed,
            tasks=cfg.tasks,
            checkpoint_every=max(100, cfg.steps // 4),
        )
        t_train = time.perf_counter()
        result = train_sft(
            store,
            out / f"policy-N{n}",
            sft,
            resume=True,
            progress=progress,
            episode_ids=ids,
            training_run=f"base-table-N{n}",
        )
        train_s = time.perf_counter() - t_train
        per_task = []
        for task in cfg.tasks:
            t_eval = time.perf_counter()
            ev = evaluate_policy(result.policy, task, cfg.episodes, seed=cfg.eval_seed, progress=progress)
            row = {
                "name": "base_table",
                "task": ev.task,
                "N": n,
                "successes": ev.successes,
                "episodes": ev.episodes,
                "rate": round(ev.rate, 4),
                "ci95": [round(ev.ci95[0], 4), round(ev.ci95[1], 4)],
                "mean_steps": round(ev.mean_steps, 1),
                "train_seconds": round(train_s, 1),
                "eval_seconds": round(time.perf_counter() - t_eval, 1),
                "policy_version": result.version,
                "preset": cfg.preset,
                "sft_steps": cfg.steps,
            }
            emit(row)
            rows.append(row)
            per_task.append(ev)
        successes = sum(e.successes for e in per_task)
        episodes = sum(e.episodes for e in per_task)
        summary = {
            "name": "base_table.summary",
            "N": n,
            "mean_rate": round(successes / episodes, 4),
            "successes": successes,
            "episodes": episodes,
            "in_flywheel_band": 0.2 <= successes / episodes <= 0.6,
            "train_seconds": round(train_s, 1),
            "samples_per_s": round(result.samples_per_s, 1),
            "final_loss": round(sum(result.losses[-20:]) / max(1, len(result.losses[-20:])), 4),
        }
        emit(summary)
        rows.append(summary)
    return rows
