"""The ``flywheel`` command: each package's own ``cli.py`` composed under one name.

Each package's ``cli.py`` imports only typer and rich at module level and imports heavy libraries
(torch, mujoco, fastapi) inside its commands, so ``flywheel --help`` is instant and a machine
without an extra installed still runs every other command.
"""

from __future__ import annotations

import typer

from data_store.cli import app as data_app
from robot_agent.cli import app as robot_app
from serving.cli import app as serve_app
from sim.cli import app as sim_app
from trainer.cli import app as train_app
from trainer.cli import bench_app
from trainer.cli_service import beat, worker

app = typer.Typer(
    name="flywheel",
    help="vla-flywheel: run VLA policies on an arm, log episodes, improve them in a world model, roll them out.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(robot_app, name="robot", help="Run the robot agent: episodes with a policy, recorded.")
app.add_typer(data_app, name="data", help="The episode store: list, show, import, export.")
app.add_typer(sim_app, name="sim", help="The simulated arm (Meta-World): tasks and renders.")
app.add_typer(train_app, name="train", help="Train policies, world models and reward models.")
app.add_typer(bench_app, name="bench", help="Benchmarks that print JSON lines.")
app.add_typer(serve_app, name="serve", help="The control-plane server: registry, rollouts, dashboard.")
app.command()(worker)
app.command()(beat)


@app.command()
def demo(
    out: str = typer.Option("flywheel_data", help="Folder for the demo's episodes, models and reports."),
    task: str = typer.Option("drawer-close", help="Meta-World task the simulated arm runs."),
    episodes: int = typer.Option(5, min=1, help="Episodes of the scripted expert to record."),
) -> None:
    """The flywheel on one machine with embedded defaults (no Redis, PostgreSQL or GPU)."""
    from flywheel.demo import run_demo

    run_demo(out=out, task=task, episodes=episodes)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
