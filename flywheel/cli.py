"""The ``flywheel`` command: each package's own ``cli.py`` composed under one name.

Each package's ``cli.py`` imports only typer and rich at module level and imports heavy libraries
(torch, mujoco, fastapi) inside its commands, so ``flywheel --help`` is instant and a machine
without an extra installed still runs every other command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from data_store.cli import app as data_app
from robot_agent.cli import app as robot_app
from robot_agent.ros_cli import app as ros_app
from serving.cli import app as serve_app
from sim.cli import app as sim_app
from trainer.cli import app as train_app
from trainer.cli import bench_app
from trainer.cli.service import beat, worker

app = typer.Typer(
    name="flywheel",
    help="vla-flywheel: run VLA policies on an arm, log episodes, improve them in a world model, roll them out.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(robot_app, name="robot", help="Run the robot agent: episodes with a policy, recorded.")
app.add_typer(ros_app, name="ros", help="The ROS 2 agent node (rclpy), with or without a ROS 2 install.")
app.add_typer(data_app, name="data", help="The episode store: list, show, import, export.")
app.add_typer(sim_app, name="sim", help="The simulated arm (Meta-World): tasks and renders.")
app.add_typer(train_app, name="train", help="Train policies, world models and reward models.")
app.add_typer(bench_app, name="bench", help="Benchmarks that print JSON lines.")
app.add_typer(serve_app, name="serve", help="The control-plane server: registry, rollouts, dashboard.")
app.command()(worker)
app.command()(beat)


@app.command()
def demo(
    out: Path = typer.Option(Path("flywheel_data/demo"), help="Folder for the demo's episodes, models and report."),
    task: str = typer.Option("drawer-close", help="Meta-World task the simulated arm runs."),
    demos: int | None = typer.Option(None, min=1, help="Scripted-expert demonstrations the base learns from [10]."),
    base_episodes: int | None = typer.Option(
        None, min=2, help="Episodes the deployed base records, the cycle's data (P) [128]."
    ),
    after_episodes: int | None = typer.Option(
        None, min=1, help="Episodes recorded after the candidate's hot swap [16]."
    ),
    quick: bool = typer.Option(False, help="Smallest sizes that run every stage (a smoke test, not a result)."),
    fresh: bool = typer.Option(
        False, "--fresh", help="Delete an earlier demo in --out (by default it is kept as <out>.previous)."
    ),
) -> None:
    """The whole flywheel on one machine, embedded defaults (no Redis, PostgreSQL or GPU): demonstrations →
    base policy → deploy and record → world model, reward model, imagined GRPO → hot swap → before/after."""
    from dataclasses import replace

    from flywheel.demo import DemoConfig, DemoFailed, NotADemoFolder, run_demo

    try:
        from sim.tasks import resolve_task

        task = resolve_task(task).name
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--task") from None
    if quick:
        config = DemoConfig.quick(out, task)
    else:
        sizes: dict[str, Any] = {"demos": demos, "base_episodes": base_episodes, "after_episodes": after_episodes}
        config = replace(DemoConfig(out=out, task=task), **{k: v for k, v in sizes.items() if v is not None})
    try:
        run_demo(config, keep_previous=not fresh)
    except NotADemoFolder as e:
        raise typer.BadParameter(str(e), param_hint="--out") from None
    except DemoFailed as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        raise typer.Exit(1) from None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
