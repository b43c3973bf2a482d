"""`flywheel robot` commands: run a policy on an arm and record every episode.

Heavy imports (mujoco, zarr, torch through vla) live inside the commands, so ``flywheel --help`` is instant.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from enum import StrEnum
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from data_store.progress import progress_bar

app = typer.Typer(no_args_is_help=True, help="Run the robot agent: episodes with a policy, recorded.")
console = Console()


class LabelMode(StrEnum):
    auto = "auto"  # the robot's verdict where it has one (a simulator), else ask
    ask = "ask"  # the operator answers after each episode
    sim = "sim"  # the robot's verdict (unknown where it cannot tell)
    none = "none"  # leave success unknown


def _fail(message: str) -> NoReturn:
    console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(1)


class _LiveSteps:
    """Subscriber that moves the step bar of the live display."""

    def __init__(self, progress: Progress, task_id: Any) -> None:
        self.progress, self.task_id = progress, task_id

    def on_episode_start(self, obs: Any) -> None:
        self.progress.reset(self.task_id)

    def on_step(self, obs: Any, action: Any, info: Any) -> None:
        self.progress.update(self.task_id, completed=info.step + 1)

    def on_episode_end(self, result: Any) -> None:
        pass


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
) -> None:
    """Run EPISODES episodes of POLICY on ROBOT and record each one into the episode store.

    Ctrl-C ends the running episode at once (kept, marked aborted: "operator interrupt") and stops the
    run; a second Ctrl-C interrupts immediately.
    """
    from data_store.episodes import EpisodeStore
    from data_store.optional import MissingDependency
    from robot_agent.loop import EpisodeInterrupted, EpisodeResult, Runtime
    from robot_agent.policies import load_policy
    from robot_agent.recorder import Recorder
    from robot_agent.robots.base import Robot, RobotFault, make_robot
    from robot_agent.safety import SafetyConfig
    from robot_agent.slot import PolicySlot

    try:
        safety_config = SafetyConfig.preset(safety) if safety else None
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--safety") from None
    kwargs: dict[str, Any] = {}
    if robot_name == "sim":
        from sim.tasks import resolve_task

        try:
            task_info = resolve_task(task)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--task") from None
        task = task_info.name
        kwargs = dict(task=task_info, camera=camera, image_size=(size, size), max_steps=max_steps, seed=seed)
        kwargs["realtime"] = realtime
    elif robot_name == "dds":
        kwargs = {"connect_timeout_s": connect_timeout}  # the domain: ROS_DOMAIN_ID, as in ROS 2
    try:
        robot = make_robot(robot_name, **kwargs)
    except MissingDependency as e:
        _fail(str(e))
    except ValueError as e:
        _fail(str(e))
    if swap_at not in ("chunk", "episode"):
        raise typer.BadParameter("expected 'chunk' or 'episode'", param_hint="--swap-at")
    policy_spec = policy_spec or ("server" if server else "scripted")
    if policy_spec == "server" and not server:
        raise typer.BadParameter("'server' needs --server URL", param_hint="--policy")
    store = EpisodeStore(store_dir)
    syncer = _syncer(server, robot, robot_id, token, swap_at, cache) if server else None
    try:
        if syncer is not None and policy_spec == "server":
            console.print(f"waiting for the version {server} wants for {robot_id} ...")
            policy, version = syncer.bootstrap()
        else:
            policy = load_policy(policy_spec, robot=robot, store=store, noise=noise, seed=seed)
            version = str(getattr(policy, "version", policy_spec))
    except ValueError as e:
        robot.disconnect()
        raise typer.BadParameter(str(e), param_hint="--policy") from None
    except TimeoutError as e:
        robot.disconnect()
        _fail(f"no policy to run: {e}")
    slot = PolicySlot(policy, version)
    if syncer is not None:
        syncer.attach(slot)
        with contextlib.suppress(Exception):  # the server may be down: the robot runs what it has
            syncer.register()
        syncer.start()

    stop = threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        stop.set()  # the loop ends the episode at the next tick; a second Ctrl-C raises at once
        signal.signal(signal.SIGINT, signal.default_int_handler)

    in_main_thread = threading.current_thread() is threading.main_thread()  # only there can signals be caught
    previous_handler = signal.signal(signal.SIGINT, on_sigint) if in_main_thread else None
    results: list[tuple[int, EpisodeResult]] = []
    progress = progress_bar(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        console=console,
    )
    try:
        robot.connect()
        runtime = Runtime(robot, slot, safety=safety_config, stop_event=stop, temperature=temperature)
        can_tell = type(robot).success is not Robot.success  # the backend says whether the task is done
        mode = (LabelMode.sim if can_tell else LabelMode.ask) if label is LabelMode.auto else label
        with progress:
            episodes_bar = progress.add_task("episodes", total=episodes, note="")
            steps_bar = progress.add_task(  # a log (not a terminal) gets the episodes' lines, not every step's
                "step", total=max_steps or robot.max_steps, note="", visible=console.is_terminal
            )
            live = _LiveSteps(progress, steps_bar)
            for i in range(episodes):
                episode_seed = seed + i
                instruction = _instruction(robot, task, episode_seed)
                writer = store.create(
                    robot.spec,
                    task=task,
                    instruction=instruction,
                    robot_id=robot_id,
                    policy_version=slot.version,
                    meta={"seed": episode_seed, "policy": policy_spec, "noise": noise, "temperature": temperature},
                    buffer_s=buffer_s,
                )
                recorder = Recorder(writer, record_success=mode is LabelMode.sim)
                progress.update(steps_bar, description=f"episode {i + 1} step")
                try:
                    result = runtime.run_episode(max_steps=max_steps, seed=episode_seed, subscribers=[recorder, live])
                except EpisodeInterrupted as e:
                    result = e.result
                results.append((episode_seed, result))
                if mode is LabelMode.ask and result.status == "complete":
                    progress.stop()
                    verdict = _ask(writer.episode_id, result)
                    if verdict is not None:
                        store.label(writer.episode_id, verdict)
                    progress.start()
                if syncer is not None:
                    final = _final_success(store, result)
                    syncer.report_episode(
                        writer.episode_id,
                        version=result.versions[-1] if result.versions else slot.version,
                        task=task,
                        success=None if final == "unknown" else final == "true",
                        length=result.steps,
                        reason=result.reason,
                    )
                    syncer.at_episode_boundary()
                successes = sum(1 for _, r in results if _final_success(store, r) == "true")
                progress.update(episodes_bar, advance=1, note=f"success {successes}/{len(results)}")
                if result.reason == "operator interrupt":
                    break
    except RobotFault as e:  # the hardware stopped: what was recorded is kept (the episode is aborted)
        _fail(f"robot {robot_name!r}: {e}")
    finally:
        if in_main_thread:
            signal.signal(signal.SIGINT, previous_handler)
        if syncer is not None:
            syncer.poke()  # send the last episode reports before stopping
            syncer.stop()
        robot.disconnect()
    _summary(store, store_dir, results)


def _syncer(server: str, robot: Any, robot_id: str, token: str | None, swap_at: str, cache: Path) -> Any:
    """The background thread that keeps this robot on the server's desired version (``robot_agent.sync``)."""
    from robot_agent.sync import PolicySyncer, SyncConfig

    config = SyncConfig(
        server=server,
        robot_id=robot_id,
        cache_dir=cache,
        token=token,
        boundary="episode" if swap_at == "episode" else "chunk",
    )
    return PolicySyncer(None, robot.spec, config)


def _instruction(robot: Any, task: str, seed: int) -> str:
    """The sim arm's phrasing for this seed (fixed on the robot so the recording names it), else the task."""
    info = getattr(robot, "task", None)
    if info is not None and hasattr(info, "instruction_for"):
        text = str(info.instruction_for(seed))
        robot.instruction = text
        return text
    return str(getattr(robot, "instruction", "") or task)


def _ask(episode_id: str, result: Any) -> bool | None:
    said = {True: "success", False: "failure", None: "cannot tell"}[result.success]
    answer = typer.prompt(
        f"episode {episode_id} ended ({result.reason}, {result.steps} steps; robot says: {said}). "
        "Success? [y]es / [n]o / [s]kip",
        default="s",
        show_default=False,
    )
    return {"y": True, "yes": True, "n": False, "no": False}.get(answer.strip().lower())


def _final_success(store: Any, result: Any) -> str:
    if result.episode_id is None:
        return "unknown"
    return str(store.info(result.episode_id).success)


def _summary(store: Any, store_dir: Path, results: list[tuple[int, Any]]) -> None:
    table = Table(title=f"{len(results)} episode(s) recorded in {store_dir}")
    for col in ("episode", "seed", "steps", "status", "success", "reason"):
        table.add_column(col)
    for episode_seed, r in results:
        success = _final_success(store, r)
        colour = {"true": "green", "false": "red"}.get(success, "yellow")
        table.add_row(str(r.episode_id), str(episode_seed), str(r.steps), r.status, f"[{colour}]{success}[/]", r.reason)
    console.print(table)
    done = sum(1 for _, r in results if _final_success(store, r) == "true")
    console.print(f"success {done}/{len(results)}; list them with: flywheel data ls --store {store_dir}")
