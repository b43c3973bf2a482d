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
from trainer.recipe import VALIDATION_SEED, Recipe


def first_seed(round_: int) -> int:
    """Scenes of round r's real episodes: 60_000 + 10_000·r (disjoint from the paper bench's and evaluation's)."""
    return 60_000 + 10_000 * round_


@dataclass(frozen=True)
class LifelongConfig:
    bench: BenchConfig = field(default_factory=lambda: replace(PRESETS["default"], tasks=("drawer-close",)))
    rounds: int = 3
    seed: int = 0


@dataclass
class TaskRounds:
    """One task's state from round to round: the policy the robot runs, and what the next cycle starts from."""

    policy_dir: Path
    policy: Any
    validation: np.ndarray  # the policy's validation outcomes at the deployment temperature: the judge's parent
    models: tuple[Any, Any] | None = None  # the last round's world and reward models (co-evolution)
    robots: list[str] = field(default_factory=lambda: [DEMO_ROBOT])  # robot ids of the real episodes so far


def run_lifelong(cfg: LifelongConfig, out: Path, echo: Any = print) -> list[dict[str, Any]]:
    """R rounds of deploy → collect P → cycle → judge → (promote); the robot's success after each, as JSON lines."""
    from data_store.episodes import EpisodeStore
    from sim.tasks import resolve_task
    from trainer.sim_grpo import ArmPool

    b = cfg.bench
    out.mkdir(parents=True, exist_ok=True)
    (out / "lifelong_config.json").write_text(json.dumps({**b.to_json(), "rounds": cfg.rounds, "seed": cfg.seed}))
    rec = Recorder(out / "lifelong.jsonl", b.to_json(), echo=echo)
    torch.manual_seed(0)
    store = EpisodeStore(out / "store")
    train_base(store, out / "base_policy", b)
    recipe_ = b.cycle_recipe(cfg.seed, kir_share=b.kir_share)
    for task in b.tasks:
        info = resolve_task(task)
        with ArmPool() as pool:
            ctx = TaskContext(
                task, out / task, store, b, rec, pool, info.camera, recipe_.horizon or b.max_steps or info.max_steps
            )
            ctx.dir.mkdir(parents=True, exist_ok=True)
            state = deploy_base(ctx, out / "base_policy", recipe_.deploy_temperature)
            for r in range(1, cfg.rounds + 1):
                run_round(ctx, state, r, recipe_)
    return rec.lines


def deploy_base(ctx: TaskContext, base_dir: Path, deploy_t: float) -> TaskRounds:
    """Round 0: the base policy's success on the evaluation scenes, and its validation outcomes for the judge."""
    from vla.artifact import load_artifact

    current = load_artifact(base_dir)
    o = ctx.outcomes(current, ctx.eval_seeds(), deploy_t)
    ctx.rec.outcomes(ctx.task, "round0", None, deploy_t, "eval", o, real_episodes=0, promoted=False)
    return TaskRounds(base_dir, current, ctx.outcomes(current, ctx.validation_seeds(), deploy_t))


def run_round(ctx: TaskContext, state: TaskRounds, r: int, recipe_: Recipe) -> None:
    """Round r on one task: collect P → cycle → judge → (promote) → the robot's success, recorded."""
    from trainer.cycle import SimJudge, held_out_starts, imagination_for, improve, judge, judge_split
    from vla.artifact import load_artifact

    b, task, store, deploy_t = ctx.cfg, ctx.task, ctx.store, recipe_.deploy_temperature
    t0 = time.perf_counter()
    ids = collect_round(ctx, state, r)
    rdir = ctx.dir / f"round{r}"
    wm, rm = fit_round_models(ctx, state, r, ids, rdir, recipe_)
    split = judge_split(ids, recipe_, store)
    imagination = imagination_for(store, task, wm, rm, recipe_, ctx.horizon, ctx.camera, split.train)
    starts = held_out_starts(store, task, split, ctx.horizon, wm, ctx.camera)
    candidate = load_artifact(state.policy_dir)
    with ctx.timed(f"grpo_round{r}"):
        history = improve(candidate, imagination, recipe_)
    sim = SimJudge(
        task,
        b.validation_episodes,
        VALIDATION_SEED,
        b.max_steps,
        ctx.pool,
        {deploy_t: state.validation},
        recipe_.safety,
    )
    with ctx.timed(f"judge_round{r}"):
        verdict = judge(candidate, state.policy, imagination, starts, recipe_, sim)
    if verdict.promote:
        promote(state, candidate, rdir / "policy", r, sim, deploy_t)
    o = ctx.outcomes(state.policy, ctx.eval_seeds(), deploy_t)
    ctx.rec.outcomes(
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


def collect_round(ctx: TaskContext, state: TaskRounds, r: int) -> list[str]:
    """Round r's P real episodes of the robot's policy (what is not recorded yet); the ids of all real ones so far."""
    b, store, task = ctx.cfg, ctx.store, ctx.task
    robot = f"round{r}"
    have = len(store.episodes(task=task, robot_id=robot, status="complete"))
    if have < b.budget:
        with ctx.timed(f"collect_round{r}"):
            ctx.collect(state.policy, range(first_seed(r) + have, first_seed(r) + b.budget), robot)
    state.robots.append(robot)
    return [i.episode_id for rb in state.robots for i in store.episodes(task=task, robot_id=rb, status="complete")]


def fit_round_models(
    ctx: TaskContext, state: TaskRounds, r: int, ids: list[str], rdir: Path, recipe_: Recipe
) -> tuple[Any, Any]:
    """Round r's world and reward models on every real episode so far, fine-tuned from the previous round's."""
    from trainer.cycle import episodes_of, fit_reward_model_step, fit_world_model_step

    episodes = episodes_of(ctx.store, ids, ctx.camera)
    models = state.models
    with ctx.timed(f"world_model_round{r}"):
        wm = fit_world_model_step(
            recipe_, episodes, rdir / "world_model", init=models[0] if models else None, resume=True
        )
    with ctx.timed(f"reward_model_round{r}"):
        rm = fit_reward_model_step(recipe_, episodes, wm, rdir / "reward_model", init=models[1] if models else None)[0]
    state.models = (wm, rm)
    return wm, rm


def promote(state: TaskRounds, candidate: Any, policy_dir: Path, r: int, sim: Any, deploy_t: float) -> None:
    """The robot runs the candidate from now on; its validation outcomes are the next round's parent's."""
    from vla.artifact import load_artifact, save_artifact

    save_artifact(
        candidate,
        policy_dir,
        parent_version=getattr(state.policy, "version", None),
        training_run=f"lifelong-round{r}",
        overwrite=True,
    )
    state.policy_dir = policy_dir
    state.policy = load_artifact(policy_dir)
    state.validation = sim.outcomes(state.policy, deploy_t)


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
