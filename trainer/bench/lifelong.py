"""``flywheel bench lifelong``: the flywheel over several nights (WMPO, arXiv 2511.09515, §4.5 and Fig. 6).

Round r = 1..R, per task, exactly what a deployment does each night: the robot runs the policy it has and records P
real (simulated) episodes → the cycle (``trainer/cycle.py``, the recipe's settings): world and reward model fitted on
every real episode so far (fine-tuned from the previous round's: co-evolution) → imagined GRPO (+ KIR) → the judge
against the policy the robot runs, at the deployment temperature → promoted or not → the robot's policy for the
next round. Reported per round: the robot's success at the deployment temperature on the evaluation scenes (the
same every round), whether the round promoted, and why. WMPO reports StackThree 46.9 → ~56.3 (128) → ~63.3 (256);
its released code ships the loop switched off (``update_wm=False``), we run it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer.bench.paper import DEMO_ROBOT, PRESETS, BenchConfig, Recorder, TaskContext, train_base
from trainer.recipe import VALIDATION_SEED


def first_seed(round_: int) -> int:
    """Scenes of round r's real episodes: 60_000 + 10_000·r (disjoint from the paper bench's and evaluation's)."""
    return 60_000 + 10_000 * round_


@dataclass(frozen=True)
class LifelongConfig:
    bench: BenchConfig = field(default_factory=lambda: replace(PRESETS["default"], tasks=("drawer-close",)))
    rounds: int = 3
    seed: int = 0


def run_lifelong(cfg: LifelongConfig, out: Path, echo: Any = print) -> list[dict[str, Any]]:
    """R rounds of deploy → collect P → cycle → judge → (promote); the robot's success after each, as JSON lines."""
    from data_store.episodes import EpisodeStore
    from sim.tasks import resolve_task
    from trainer.cycle import (
        SimJudge,
        episodes_of,
        fit_reward_model_step,
        fit_world_model_step,
        held_out_starts,
        imagination_for,
        improve,
        judge,
        judge_split,
    )
    from trainer.sim_grpo import ArmPool
    from vla.artifact import load_artifact, save_artifact

    b = cfg.bench
    out.mkdir(parents=True, exist_ok=True)
    (out / "lifelong_config.json").write_text(json.dumps({**b.to_json(), "rounds": cfg.rounds, "seed": cfg.seed}))
    rec = Recorder(out / "lifelong.jsonl", b.to_json(), echo=echo)
    torch.manual_seed(0)
    store = EpisodeStore(out / "store")
    train_base(store, out / "base_policy", b)
    recipe_ = b.cycle_recipe(cfg.seed, kir_share=b.kir_share)
    deploy_t = recipe_.deploy_temperature
    for task in b.tasks:
        info = resolve_task(task)
        with ArmPool() as pool:
            ctx = TaskContext(
                task, out / task, store, b, rec, pool, info.camera, recipe_.horizon or b.max_steps or info.max_steps
            )
            ctx.dir.mkdir(parents=True, exist_ok=True)
            current_dir = out / "base_policy"
            current = load_artifact(current_dir)
            o = ctx.outcomes(current, ctx.eval_seeds(), deploy_t)
            rec.outcomes(task, "round0", None, deploy_t, "eval", o, real_episodes=0, promoted=False)
            parent_validation = ctx.outcomes(current, ctx.validation_seeds(), deploy_t)
            models: tuple[Any, Any] | None = None
            robots = [DEMO_ROBOT]
            for r in range(1, cfg.rounds + 1):
                t0 = time.perf_counter()
                robot = f"round{r}"
                have = len(store.episodes(task=task, robot_id=robot, status="complete"))
                if have < b.budget:
                    with ctx.timed(f"collect_round{r}"):
                        ctx.collect(current, range(first_seed(r) + have, first_seed(r) + b.budget), robot)
                robots.append(robot)
                ids = [i.episode_id for rb in robots for i in store.episodes(task=task, robot_id=rb, status="complete")]
                episodes = episodes_of(store, ids, info.camera)
                rdir = ctx.dir / f"round{r}"
                with ctx.timed(f"world_model_round{r}"):
                    wm = fit_world_model_step(
                        recipe_, episodes, rdir / "world_model", init=models[0] if models else None, resume=True
                    )
                with ctx.timed(f"reward_model_round{r}"):
                    rm = fit_reward_model_step(
                        recipe_, episodes, wm, rdir / "reward_model", init=models[1] if models else None
                    )[0]
                models = (wm, rm)
                split = judge_split(ids, recipe_, store)
                imagination = imagination_for(store, task, wm, rm, recipe_, ctx.horizon, info.camera, split.train)
                starts = held_out_starts(store, task, split, ctx.horizon, wm, info.camera)
                candidate = load_artifact(current_dir)
                with ctx.timed(f"grpo_round{r}"):
                    history = improve(candidate, imagination, recipe_)
                sim = SimJudge(
                    task,
                    b.validation_episodes,
                    VALIDATION_SEED,
                    b.max_steps,
                    pool,
                    {deploy_t: parent_validation},
                    recipe_.safety,
                )
                with ctx.timed(f"judge_round{r}"):
                    verdict = judge(candidate, current, imagination, starts, recipe_, sim)
                if verdict.promote:
                    current_dir = rdir / "policy"
                    save_artifact(
                        candidate,
                        current_dir,
                        parent_version=getattr(current, "version", None),
                        training_run=f"lifelong-round{r}",
                        overwrite=True,
                    )
                    current = load_artifact(current_dir)
                    parent_validation = sim.outcomes(current, deploy_t)
                o = ctx.outcomes(current, ctx.eval_seeds(), deploy_t)
                rec.outcomes(
                    task,
                    f"round{r}",
                    None,
                    deploy_t,
                    "eval",
                    o,
                    real_episodes=b.budget * r,
                    promoted=verdict.promote,
                    reason=verdict.reason,
                    metrics=verdict.metrics(),
                    imagined_success=[round(h.get("imagined_success", float("nan")), 3) for h in history],
                    wall_time_s=time.perf_counter() - t0,
                )
    return rec.lines


def summary(lines: list[dict[str, Any]]) -> list[str]:
    """One line per task and round: the robot's success at the deployment temperature, and the round's verdict."""
    from data_store.stats import mcnemar, wilson

    out = []
    by: dict[str, dict[str, np.ndarray]] = {}
    for ln in lines:
        if ln.get("figure") == "success_rate" and "outcomes" in ln:
            by.setdefault(ln["task"], {})[ln["row"]] = np.array([c == "1" for c in ln["outcomes"]])
            o = by[ln["task"]][ln["row"]]
            r0 = by[ln["task"]].get("round0")
            vs = "" if r0 is None or ln["row"] == "round0" else f", vs round 0: p {mcnemar(o, r0).p_two_sided:.3f}"
            out.append(
                f"{ln['task']} {ln['row']}: {wilson(int(o.sum()), len(o)).percent()}{vs}"
                + (
                    f" · {'promoted' if ln.get('promoted') else 'kept'}: {ln.get('reason', '')}"
                    if ln["row"] != "round0"
                    else ""
                )
            )
    return out
