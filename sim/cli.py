"""`flywheel sim` commands: the task table and renders. Heavy imports live inside the commands."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(no_args_is_help=True)
console = Console()


@app.command("tasks")
def tasks() -> None:
    """List the registry's tasks: name, Meta-World env, steps, camera and instructions."""
    from sim.tasks import TASKS

    table = Table(title="Simulated-arm tasks (any other Meta-World v3 name works too)")
    for col in ("task", "Meta-World env", "max steps", "camera", "instructions"):
        table.add_column(col)
    for t in TASKS.values():
        view = t.camera if t.fovy is None else f"{t.camera} @ {t.fovy:g}°"
        table.add_row(t.name, t.env_name, str(t.max_steps), view, " | ".join(t.instructions))
    console.print(table)


@app.command("render")
def render(
    task: str = typer.Option(..., "--task", help="Task name, e.g. push or faucet-open-v3."),
    out: Path = typer.Option(..., "--out", help="PNG file to write."),
    seeds: str = typer.Option("0", "--seeds", help="Comma-separated seeds: one frame per seed, side by side."),
    camera: str | None = typer.Option(None, "--camera", help="Camera name (default: the task's)."),
    size: int = typer.Option(64, "--size", min=16, max=1024, help="Frame height and width in pixels."),
    steps: int = typer.Option(0, "--steps", min=0, help="Steps of the scripted expert before the frame."),
    scale: int = typer.Option(4, "--scale", min=1, max=16, help="Upscale the PNG (nearest) for viewing."),
) -> None:
    """Render the task's first frame (or after --steps of the expert) for some seeds into a PNG."""
    import numpy as np

    from data_store.contact_sheet import write_png
    from sim.env import MetaWorldArm
    from sim.experts import ScriptedExpert
    from sim.tasks import resolve_task

    try:
        info = resolve_task(task)
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    try:
        arm = MetaWorldArm(info, camera=camera, image_size=(size, size))
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    frames = []
    with arm:
        expert = ScriptedExpert(info)
        for seed in seed_list:
            obs = arm.reset(seed)
            for _ in range(steps):
                obs = arm.step(expert.act(arm.raw_observation()))
            frames.append(obs.images[arm.camera])
    image = np.concatenate(frames, axis=1).repeat(scale, axis=0).repeat(scale, axis=1)  # nearest upscale
    out.parent.mkdir(parents=True, exist_ok=True)
    write_png(image, out)
    console.print(f"wrote {out} ({len(frames)} frame(s) of {info.name} from {arm.camera}, {size}×{size})")
