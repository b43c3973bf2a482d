"""``flywheel bench lifelong``: WMPO's lifelong loop (PAPERS.md §1.1 step 8, §1.5 Fig. 6) on the simulated arm.

Round r = 1..R: deploy the current policy → collect P real (simulated) episodes of it → refit the world
model and the reward model on every policy rollout so far (fine-tuned from the previous round's) →
WMPO + KIR in imagination → evaluate on the simulator. Round 0 is the SFT base policy. WMPO reports
StackThree 46.9 → ~56.3 (128) → ~63.3 (256); the released code ships the loop switched off
(``update_wm=False``), we run it.

The base policy and its first P episodes are the paper bench's own stages (shared cache layout), so a
lifelong run after ``bench paper`` in the same ``--out`` starts at round 1's refit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from trainer.coevolution import WMPOConfig, build_imagination, wmpo
from trainer.paper_bench import (
    P_SEED,
    BenchConfig,
    Recorder,
    TaskRun,
    collect,
    evaluate,
    fit_models,
    train_base,
    wilson,
)
from trainer.paper_bench import PRESETS as BENCH_PRESETS


def first_seed(round_: int) -> int:
    """Scenes of round r's real episodes: round 1 is the paper bench's P episodes; later rounds 60_000 + 10_000·r."""
    return P_SEED if round_ == 1 else 60_000 + 10_000 * round_


@dataclass(frozen=True)
class LifelongConfig:
    bench: BenchConfig = field(default_factory=lambda: replace(BENCH_PRESETS["default"], tasks=("drawer-close",)))
    rounds: int = 3


def run_lifelong(cfg: LifelongConfig, out: Path, echo: Any = print) -> list[dict[str, Any]]:
    """R rounds of deploy → collect P → refit → RL; success after each round, per task, as JSON lines."""
    from data_store.episodes import EpisodeStore
    from sim.tasks import resolve_task
    from vla.artifact import load_artifact

    b = cfg.bench
    out.mkdir(parents=True, exist_ok=True)
    rec = Recorder(out / "lifelong.jsonl", {**b.to_json(), "rounds": cfg.rounds}, echo=echo)
    torch.manual_seed(b.seed)
    store = EpisodeStore(out / "store")
    train_base(store, out / "base_policy", b)
    for task in b.tasks:
        info = resolve_task(task)
        run = TaskRun(task, out / task, store, b.max_steps or info.max_steps, info.camera)
        run.dir.mkdir(exist_ok=True)
        policy = load_artifact(out / "base_policy")  # a copy per task: RL changes it in place
        wins, n = evaluate(policy, task, b.eval_episodes, b.eval_temperature, b.max_steps)
        rate, lo, hi = wilson(wins, n)
        rec.emit(f"lifelong/{task}/round0", "success_rate", rate, "fraction", ci95=[lo, hi], n=n, real_episodes=0)
        models: tuple[Any, Any] | None = None
        robots: tuple[str, ...] = ()
        wcfg = WMPOConfig(grpo=b.grpo, iterations=b.rl_iterations, kir_share=b.kir_share, seed=b.seed)
        for r in range(1, cfg.rounds + 1):
            t0 = time.perf_counter()
            robot = "base" if r == 1 else f"round{r}"  # round 1's rollouts are the paper bench's P episodes
            have = len(store.episodes(task=task, robot_id=robot, status="complete"))
            if have < b.budget:
                collect(
                    policy,
                    task,
                    b.budget - have,
                    store,
                    b.grpo.temperature,
                    first_seed(r) + have,
                    robot,
                    max_steps=b.max_steps,
                )
            robots = (*robots, robot)
            models = fit_models(run, b, models, robots, tag=f"round{r}")
            imagination = build_imagination(store, task, models[0], models[1], run.horizon, wcfg, run.camera, robots)
            history = wmpo(policy, imagination, wcfg)
            wins, n = evaluate(policy, task, b.eval_episodes, b.eval_temperature, b.max_steps)
            rate, lo, hi = wilson(wins, n)
            rec.emit(
                f"lifelong/{task}/round{r}",
                "success_rate",
                rate,
                "fraction",
                ci95=[lo, hi],
                n=n,
                real_episodes=b.budget * r,
                imagined_success=[round(h.get("imagined_success", float("nan")), 3) for h in history],
                wall_time_s=time.perf_counter() - t0,
            )
    return rec.lines
