"""`flywheel robot` commands: run a policy on an arm and record every episode.

Heavy imports (mujoco, zarr, torch through vla) live inside the commands, so ``flywheel --help`` is instant.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console

app = typer.Typer(no_args_is_help=True, help="Run the robot agent: episodes with a policy, recorded.")
err = Console(stderr=True)  # errors go to stderr: a script reading the output gets only results


class LabelMode(StrEnum):
    auto = "auto"  # the robot's verdict where it has one (a simulator), else ask
    ask = "ask"  # the operator answers after each episode
    sim = "sim"  # the robot's verdict (unknown where it cannot tell)
    none = "none"  # leave success unknown


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


@app.command("run")
def run(
    robot_name: str = typer.Option("sim", "--robot", help="Robot backend: sim, dds, lerobot."),
    task: str = typer.Option("drawer-close", "--task", help="Task (sim: a registry or Meta-World v3 name)."),
    policy_spec: str | None = typer.Option(
        None,
        "--policy",
        help="scripted | random | replay:EPISODE_ID | artifact:DIR (or a policy directory) | server "
        "(the version the server wants for this robot). Default: scripted, or server with --server.",
    ),
    episodes: int = typer.Option(10, "--episodes", min=1, help="Episodes to run."),
    store_dir: Path = typer.Option(
        "flywheel_data/episodes", "--store", envvar="FLYWHEEL_STORE", help="Episode store folder (created if missing)."
    ),
    seed: int = typer.Option(0, "--seed", help="Scene seed of the first episode; episode i uses seed + i."),
    max_steps: int | None = typer.Option(None, "--max-steps", min=1, help="Steps per episode (default: the task's)."),
    noise: float = typer.Option(0.1, "--noise", min=0.0, help="Scripted expert: std of the Gaussian action noise."),
    label: LabelMode = typer.Option(
        LabelMode.auto, "--label", help="Success labels: auto | ask (operator) | sim (robot's verdict) | none."
    ),
    camera: str | None = typer.Option(None, "--camera", help="Sim camera (default: the task's)."),
    size: int = typer.Option(64, "--size", min=16, max=1024, help="Sim image height and width in pixels."),
    robot_id: str = typer.Option("sim-0", "--robot-id", help="Robot id written into each episode."),
    connect_timeout: float = typer.Option(
        15.0, "--connect-timeout", min=0.1, help="dds: seconds to wait for the arm's first joint states and images."
    ),
    realtime: bool = typer.Option(False, "--realtime", help="Sim: pace on the wall clock like a physical arm."),
    safety: str | None = typer.Option(None, "--safety", help="Safety preset: default | sim | off (default: robot's)."),
    temperature: float = typer.Option(
        0.0,
        "--temperature",
        min=0.0,
        help="Policy sampling temperature: 0 (the default) is deterministic (the median action bin); more explores "
        "(recorded per episode).",
    ),
    buffer_s: float = typer.Option(
        1.0, "--buffer-s", min=0.0, help="Recorder buffer: a crash loses at most this much (0: publish every step)."
    ),
    server: str | None = typer.Option(
        None,
        "--server",
        envvar="FLYWHEEL_SERVER",
        help="Control-plane URL: follow its rollouts and rollbacks (hot swap) and index episodes there.",
    ),
    token: str | None = typer.Option(None, "--token", envvar="FLYWHEEL_TOKEN", help="API token for --server."),
    swap_at: str = typer.Option("chunk", "--swap-at", help="With --server: swap at the next 'chunk' or 'episode'."),
    cache: Path = typer.Option(
        "flywheel_data/robot_cache", "--cache", help="With --server: where downloaded policy versions are kept."
    ),
    threads: int = typer.Option(
        1,
        "--threads",
        min=0,
        help="The policy's CPU threads (1 keeps the control loop's deadlines beside a trainer; 0: all cores given).",
    ),
) -> None:
    """Run EPISODES episodes of POLICY on ROBOT and record each one into the episode store.

    Ctrl-C ends the running episode at once (kept, marked aborted: "operator interrupt") and stops the
    run; a second Ctrl-C interrupts immediately.
    """
    from robot_agent.display import run_shown
    from robot_agent.robots.base import RobotFault
    from robot_agent.session import SessionConfig, SessionError

    if swap_at not in ("chunk", "episode"):
        raise typer.BadParameter("expected 'chunk' or 'episode'", param_hint="--swap-at")
    config = SessionConfig(
        robot=robot_name, task=task, policy=policy_spec, episodes=episodes, store=store_dir, seed=seed,
        max_steps=max_steps, noise=noise, label=label.value, camera=camera, size=size, robot_id=robot_id,
        connect_timeout=connect_timeout, realtime=realtime, safety=safety, temperature=temperature,
        buffer_s=buffer_s, server=server, token=token, swap_at="episode" if swap_at == "episode" else "chunk",
        cache=cache, threads=threads,
    )  # fmt: skip
    try:
        run_shown(config)
    except SessionError as e:
        if e.option is not None:
            raise typer.BadParameter(str(e), param_hint=e.option) from None
        _fail(str(e))
    except RobotFault as e:  # the hardware stopped: what was recorded is kept (the episode is aborted)
        _fail(f"robot {robot_name!r}: {e}")
