"""`flywheel train sft`, `flywheel bench base-policy`, `flywheel bench policy-speed`.

Only typer/rich/stdlib at module level; torch, mujoco and the trainers load inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from vla.threads import bound_threads

console = Console(stderr=True)


def _csv(value: str | None, what: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = tuple(x.strip() for x in value.split(",") if x.strip())
    if not items:
        raise typer.BadParameter(f"expected a comma-separated list of {what}")
    return items


def _vision_overrides(preset: str, vision_pretrained: Path | None) -> dict:
    """The vision-encoder fields of the preset's config with a pretrained encoder; none without one."""
    if vision_pretrained is None:
        return {}
    from vla.model import VLAConfig

    try:
        pre = VLAConfig.preset(preset).with_pretrained_vision(vision_pretrained)
    except (FileNotFoundError, KeyError, ValueError) as e:
        raise typer.BadParameter(str(e), param_hint="--vision-pretrained") from None
    return {
        k: getattr(pre, k)
        for k in (
            "vision_kind",
            "image_size",
            "patch_size",
            "vision_hidden",
            "vision_layers",
            "vision_heads",
            "vision_mlp",
            "vision_pretrained",
        )
    }


def sft(
    data: Path = typer.Option(..., "--data", help="Episode store with demonstrations (successful episodes are used)."),
    out: Path = typer.Option(..., "--out", help="Folder for the trained policy artifact (checkpoints: OUT.ckpt)."),
    preset: str = typer.Option("small", "--preset", help="Model preset: tiny | small | base."),
    tasks: str | None = typer.Option(None, "--tasks", help="Comma-separated tasks to train on (default: all)."),
    steps: int = typer.Option(1500, "--steps", min=1, help="Optimizer steps."),
    batch: int = typer.Option(32, "--batch", min=1, help="Samples per step."),
    lr: float = typer.Option(5e-4, "--lr", min=0.0, help="Peak learning rate (warm-up, cosine decay)."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from OUT.ckpt when it is there."),
    eval_episodes: int = typer.Option(
        10, "--eval-episodes", min=0, help="Episodes per task on the simulated arm at the end."
    ),
    checkpoint_every: int = typer.Option(100, "--checkpoint-every", min=1, help="Steps between checkpoints."),
    vision_pretrained: Path | None = typer.Option(
        None, "--vision-pretrained", help="Local HF ViT/SigLIP folder to start the vision encoder from."
    ),
    threads: int = typer.Option(1, "--threads", min=1, help="torch intra-op threads."),
    seed: int = typer.Option(0, "--seed", help="Seed of the initial weights and the batch order."),
) -> None:
    """Supervised fine-tuning of a VLA policy on an episode store's successful episodes."""
    from data_store.episodes import EpisodeStore

    if preset not in ("tiny", "small", "base"):
        raise typer.BadParameter(f"unknown preset {preset!r}: tiny | small | base", param_hint="--preset")
    if not data.is_dir():
        raise typer.BadParameter(f"{data} is not an episode store folder", param_hint="--data")
    bound_threads(threads)  # one intra-op thread beats two contending ones on a shared box
    from trainer.sft import SFTConfig, train_sft

    overrides = _vision_overrides(preset, vision_pretrained)
    cfg = SFTConfig(
        preset=preset,
        steps=steps,
        batch_size=batch,
        lr=lr,
        tasks=_csv(tasks, "tasks"),
        checkpoint_every=checkpoint_every,
        seed=seed,
        model_overrides=overrides,
    )
    try:
        result = train_sft(
            EpisodeStore(data, create=False), out, cfg, resume=resume, progress=True, eval_episodes=eval_episodes
        )
    except ValueError as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(1) from None
    console.print(f"policy [bold]{result.version}[/bold] written to {out} ({result.samples_per_s:.0f} samples/s)")
    for ev in result.evaluations:
        lo, hi = ev.ci95
        console.print(f"  {ev.task}: {ev.successes}/{ev.episodes} = {ev.rate:.0%} (95% CI {lo:.0%}–{hi:.0%})")
    first_task = result.evaluations[0].task if result.evaluations else "TASK"
    console.print(f"run it: flywheel robot run --policy {out} --task {first_task}")


def base_policy(
    tasks: str = typer.Option(
        "drawer-close,window-open,drawer-open,button-press-topdown",
        "--tasks",
        help="Comma-separated Meta-World tasks.",
    ),
    demos: str = typer.Option("5,10,25", "--demos", help="Comma-separated demonstrations per task (N)."),
    episodes: int = typer.Option(50, "--episodes", min=1, help="Evaluation episodes per task and N."),
    preset: str = typer.Option("small", "--preset", help="Model preset."),
    steps: int = typer.Option(600, "--steps", min=1, help="SFT steps for every N."),
    noise: float = typer.Option(0.1, "--noise", min=0.0, help="Scripted expert's action noise σ."),
    out: Path = typer.Option("flywheel_data/base_table", "--out", help="Folder for demos and policies (reused)."),
    threads: int = typer.Option(1, "--threads", min=1, help="torch intra-op threads."),
) -> None:
    """The base-policy table: success vs N demos per task, one multi-task policy per N (JSON lines)."""
    import sys

    try:
        ns = tuple(int(x) for x in _csv(demos, "integers") or ())
    except ValueError:
        raise typer.BadParameter("expected integers like 5,10,25", param_hint="--demos") from None
    task_list = _csv(tasks, "tasks") or ()
    from sim.tasks import resolve_task

    for t in task_list:
        try:
            resolve_task(t)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--tasks") from None
    bound_threads(threads)
    from trainer.bench.base_table import BaseTableConfig, run_base_table

    cfg = BaseTableConfig(tasks=task_list, demos=ns, episodes=episodes, preset=preset, steps=steps, noise=noise)
    from data_store.measure import machine

    def emit(row: dict) -> None:
        print(
            json.dumps(
                {
                    **row,
                    "machine": machine(),
                    "config": {"threads": threads, "noise": noise, "steps": steps, "preset": preset},
                }
            ),
            flush=True,
        )

    run_base_table(cfg, out, emit=emit, progress=sys.stderr.isatty())


def policy_speed(
    presets: str = typer.Option("tiny,small,base", "--presets", help="Comma-separated presets."),
    repeats: int = typer.Option(30, "--repeats", min=3, help="Timed calls per measurement."),
    threads: int = typer.Option(1, "--threads", min=1, help="torch intra-op threads."),
) -> None:
    """Chunk inference latency p50/p99 (batch 1 and 64), peak memory and SFT samples/s per preset (JSON lines)."""
    bound_threads(threads)
    import importlib.util

    # benchmarks/ is a folder of scripts beside the packages, not an installed package
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "policy_speed.py"
    spec = importlib.util.spec_from_file_location("policy_speed", path)
    if spec is None or spec.loader is None or not path.is_file():
        console.print(f"[red]error:[/red] {path} not found (run from a source checkout)")
        raise typer.Exit(1)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for row in module.run(_csv(presets, "presets") or (), repeats=repeats, threads=threads):
        print(json.dumps(row), flush=True)


def register(train: typer.Typer, bench: typer.Typer) -> None:
    """Add this family's commands."""
    train.command("sft")(sft)
    bench.command("base-policy")(base_policy)
    bench.command("policy-speed")(policy_speed)
