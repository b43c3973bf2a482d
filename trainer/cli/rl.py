"""`flywheel train grpo`: improve a policy with GRPO inside a learned world model (WMPO, + WoVR KIR).

Only typer/rich at module level; torch and the models load inside the command.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console(stderr=True)


def register(train: typer.Typer, bench: typer.Typer) -> None:
    """Add `train grpo`."""

    @train.command("grpo")
    def grpo(
        store: Path = typer.Option(..., help="Episode store with the policy's real rollouts of the task."),
        task: str = typer.Option(..., help="Meta-World task the rollouts are of, e.g. drawer-close."),
        policy: Path = typer.Option(..., help="Policy artifact folder to start from."),
        world_model: Path = typer.Option(..., help="World-model folder (`flywheel train world-model`)."),
        reward_model: Path = typer.Option(..., help="Reward-model folder (`flywheel train reward-model`)."),
        out: Path = typer.Option(..., help="Folder for the improved policy artifact."),
        iterations: int = typer.Option(20, min=1, help="GRPO updates."),
        kir_share: float = typer.Option(0.5, min=0.0, max=1.0, help="Share of keyframe starts (WoVR KIR); 0: WMPO."),
        preset: str = typer.Option("cpu", help="GRPO preset: paper | cpu | tiny."),
        lr: float | None = typer.Option(None, help="Learning rate (default: the preset's)."),
        temperature: float | None = typer.Option(
            None,
            min=0.05,
            help="Sampling temperature (papers: 1.6; `bench paper` calibrates 1.3 for the small policy).",
        ),
        length_normalised: bool = typer.Option(False, help="WoVR's 1/T_valid loss instead of token-mean."),
        robots: str = typer.Option("", help="Comma-separated robot ids whose episodes to use (default: all)."),
        seed: int = typer.Option(0),
    ) -> None:
        """WMPO: imagined rollouts from the store's real first frames (and keyframes), GRPO, a new artifact."""
        import json
        import math

        from trainer import grpo as grpo_lib

        if preset not in grpo_lib.PRESETS:
            raise typer.BadParameter(f"--preset: choose one of {', '.join(grpo_lib.PRESETS)}")
        for path, what in ((policy, "--policy"), (world_model, "--world-model"), (reward_model, "--reward-model")):
            if not path.exists():
                raise typer.BadParameter(f"{what} {path}: no such folder")
        if not store.exists():
            raise typer.BadParameter(f"--store {store}: no such folder")

        from data_store.episodes import EpisodeStore
        from data_store.progress import progress_bar
        from sim.tasks import resolve_task
        from trainer.coevolution import WMPOConfig, build_imagination, load_models, wmpo
        from vla.artifact import load_artifact, save_artifact

        info = resolve_task(task)
        pol = load_artifact(policy)
        wm, rm = load_models(world_model, reward_model)
        cfg = WMPOConfig(
            grpo=grpo_lib.config(preset, lr=lr, temperature=temperature, length_normalised=length_normalised or None),
            iterations=iterations,
            kir_share=kir_share,
            seed=seed,
        )
        robot_ids = tuple(r for r in robots.split(",") if r) or None
        try:
            imagination = build_imagination(
                EpisodeStore(store), info.name, wm, rm, info.max_steps, cfg, info.camera, robot_ids
            )
        except ValueError as e:
            console.print(f"[red]{e}[/red]")
            raise typer.Exit(1) from e
        with progress_bar(console=console) as bar:
            job = bar.add_task("GRPO in imagination", total=iterations)

            def report(it: int, stats: dict[str, float]) -> None:
                bar.update(job, advance=1)
                print(
                    json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in stats.items()})
                )

            history = wmpo(pol, imagination, cfg, report)
        version = save_artifact(
            pol,
            out,
            parent_version=getattr(pol, "version", None),
            training_run=f"grpo-{task}",
            metrics={"imagined_success_last": history[-1].get("imagined_success")},
            overwrite=True,
        )
        console.print(f"[green]saved[/green] {out} ({version})")
