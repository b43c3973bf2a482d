"""`flywheel bench paper | lifelong | rl-cost`: WMPO's table, the lifelong loop and the cost of imagined RL.

Only typer/rich at module level; the benches import torch and the simulator inside the commands.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

console = Console(stderr=True)


def _tasks(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    from sim.tasks import resolve_task

    names = tuple(t.strip() for t in value.split(",") if t.strip())
    if not names:
        raise typer.BadParameter("give at least one task, e.g. --tasks drawer-close,window-open")
    for name in names:
        try:
            resolve_task(name)
        except (KeyError, ValueError) as e:
            raise typer.BadParameter(f"unknown Meta-World task {name!r}: {e}") from e
    return names


def _variants(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    from trainer.bench.paper import VARIANTS

    names = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = [v for v in names if v not in VARIANTS]
    if unknown or not names:
        raise typer.BadParameter(f"--variants: choose from {', '.join(VARIANTS)}")
    return names


def _ints(value: str | None, option: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        out = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers, got {value!r}", param_hint=option) from None
    if not out:
        raise typer.BadParameter("give at least one value", param_hint=option)
    return out


def paper(
    tasks: str | None = typer.Option(None, help="Comma-separated Meta-World v3 tasks (default: 4 tasks)."),
    budget: int | None = typer.Option(None, min=8, help="P: real episodes of the base policy (WMPO: 128)."),
    out: Path = typer.Option(Path("bench_paper"), help="Folder for the store, models, results.jsonl, report.md."),
    eval_episodes: int | None = typer.Option(None, min=1, help="Seeded evaluation scenes per task."),
    seeds: str | None = typer.Option(None, help="Comma-separated seeds of every trained row (default: 0,1,2)."),
    recipe: str | None = typer.Option(None, help="The cycle's recipe (trainer/recipe.py; default: default)."),
    set_: list[str] = typer.Option(
        [], "--set", help="A recipe setting to try, KEY=VALUE (JSON value); the report names it."
    ),
    sim_budgets: str | None = typer.Option(None, help="Real budgets of GRPO in the simulator, e.g. 128,512."),
    quick: bool = typer.Option(False, "--quick", help="A tiny smoke configuration (one task, tiny models)."),
    preset: str = typer.Option("default", help="Configuration: default | reduced | quick."),
    variants: str | None = typer.Option(
        None, help="Comma-separated rows to run (base,grpo_sim,wmpo,wmpo_kir,wmpo_kir_coevo; default: all)."
    ),
    jobs: int | None = typer.Option(
        None, min=1, help="(task, seed) units run at once, one process each (default: one per CPU core)."
    ),
) -> None:
    """WMPO's table on the simulated arm, judged as the robot runs: Base (as deployed and at its best
    temperature), GRPO in the simulator at several real budgets, WMPO, WMPO + KIR, WMPO + KIR + co-evolution;
    success at the deployment temperature over seeds, with intervals and paired tests, as JSON lines and
    report.md."""
    from dataclasses import replace

    from trainer.bench.paper import PRESETS, TaskFailed, run_bench, units
    from trainer.cli.service import _settings

    if preset not in PRESETS:
        raise typer.BadParameter(f"--preset: choose one of {', '.join(PRESETS)}")
    cfg = PRESETS["quick" if quick else preset]
    overrides: dict[str, Any] = {
        "tasks": _tasks(tasks),
        "budget": budget,
        "eval_episodes": eval_episodes,
        "seeds": _ints(seeds, "--seeds"),
        "recipe": recipe,
        "recipe_overrides": {**cfg.recipe_overrides, **_settings(set_)} if set_ else None,
        "sim_budgets": _ints(sim_budgets, "--sim-budgets"),
        "variants": _variants(variants),
    }
    try:
        cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
        cfg.cycle_recipe(0)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    n_jobs = jobs or min(len(units(cfg)), os.cpu_count() or 1)
    try:
        run_bench(cfg, out, jobs=n_jobs)
    except TaskFailed as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(1) from None
    console.print(f"[green]report:[/green] {out / 'report.md'}")


def lifelong(
    tasks: str | None = typer.Option("drawer-close", help="Comma-separated Meta-World v3 tasks."),
    rounds: int = typer.Option(3, min=1, help="Rounds (nights) of deploy → collect P → cycle → judge."),
    budget: int | None = typer.Option(None, min=8, help="P real episodes per round."),
    out: Path = typer.Option(Path("bench_lifelong"), help="Folder for the store, models and lifelong.jsonl."),
    quick: bool = typer.Option(False, "--quick", help="A tiny smoke configuration."),
) -> None:
    """The flywheel over several nights: the robot's success at the deployment temperature after each round."""
    from dataclasses import replace

    from trainer.bench.lifelong import LifelongConfig, run_lifelong, summary
    from trainer.bench.paper import PRESETS

    bench_cfg = PRESETS["quick" if quick else "default"]
    overrides: dict[str, Any] = {"tasks": _tasks(tasks), "budget": budget}
    bench_cfg = replace(bench_cfg, **{k: v for k, v in overrides.items() if v is not None})
    lines = run_lifelong(LifelongConfig(bench=bench_cfg, rounds=rounds), out)
    for line in summary(lines):
        console.print(line, highlight=False)


def _print_stage_times(from_run: Path) -> None:
    """One JSON line per stage of a `bench paper` run: its wall time."""
    import json

    from data_store.measure import machine
    from trainer.bench.cost import stage_times

    results = from_run / "results.jsonl"
    if not results.is_file():
        raise typer.BadParameter(f"{results} not found: run `flywheel bench paper --out {from_run}` first")
    for row in stage_times(results):
        print(
            json.dumps(
                {
                    "name": f"rl-cost/stage/{row['stage']}",
                    "figure": "wall_time",
                    "value": row["s"],
                    "unit": "s",
                    "machine": machine(),
                    "config": {"from": str(from_run)},
                }
            )
        )


def rl_cost(
    from_run: Path | None = typer.Option(None, "--from", help="A `bench paper` folder: report its stage times."),
    quick: bool = typer.Option(False, "--quick", help="A tiny grid with tiny models."),
) -> None:
    """Wall time and peak memory of imagined RL; trajectories per hour; growth with G, batch and horizon; where one
    iteration's time goes; imagined frames/s beside the simulator's."""
    import json
    from dataclasses import asdict

    from data_store.measure import machine
    from trainer.bench.cost import DEFAULT_POINT, GRID, PARTS, QUICK_GRID, breakdown, markdown, scaling

    if from_run is not None:
        _print_stage_times(from_run)

    def emit(name: str, figure: str, value: float, unit: str, **extra: object) -> None:
        print(
            json.dumps(
                {
                    "name": name,
                    "figure": figure,
                    "value": round(value, 3),
                    "unit": unit,
                    "machine": machine(),
                    "config": extra,
                }
            )
        )

    preset = "tiny" if quick else "small"
    rows = scaling(QUICK_GRID if quick else GRID, preset, preset, emit)
    console.print(markdown(rows))
    point = QUICK_GRID[0] if quick else DEFAULT_POINT
    split = breakdown(point, preset, preset, sim_seconds=0.5 if quick else 3.0)
    where = {"policy_preset": preset, "world_model_preset": preset, **asdict(point)}
    iteration = split["draw"] + split["update"]
    for part in (*PARTS, "other", "update"):
        emit(f"rl-cost/iteration/{part}", "time", split[part], "s", share=round(split[part] / iteration, 3), **where)
    imagined, sim = split["imagined_frames_per_s"], split["sim_frames_per_s"]
    emit("rl-cost/imagined_frames", "throughput", imagined, "frames/s", ratio_to_sim=round(imagined / sim, 3), **where)
    emit("rl-cost/sim_frames", "throughput", sim, "frames/s", task="drawer-close", what="step + render", **where)


def register(train: typer.Typer, bench: typer.Typer) -> None:
    """Add `bench paper`, `bench lifelong` and `bench rl-cost`."""
    bench.command("paper")(paper)
    bench.command("lifelong")(lifelong)
    bench.command("rl-cost")(rl_cost)
