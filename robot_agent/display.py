"""The operator's view of an agent session: a live display of episodes and steps, the operator's success prompt, and
the summary table. Used by ``flywheel robot run`` and ``flywheel demo``; on a terminal the bars are live, in a log one
line per episode (``data_store.progress.progress_bar``)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from data_store.progress import progress_bar
from robot_agent.loop import EpisodeResult, Subscriber
from robot_agent.session import AgentSession, EpisodeRecord, SessionConfig

console = Console()


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


class LiveView:
    """Two bars: episodes (with the success count so far) and the running episode's steps (terminal only)."""

    def __init__(self, total: int | None, steps_per_episode: int | None) -> None:
        self.progress = progress_bar(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.episodes_bar = self.progress.add_task("episodes", total=total, note="")
        self.steps_bar = self.progress.add_task(  # a log (not a terminal) gets the episodes' lines, not every step's
            "step", total=steps_per_episode, note="", visible=console.is_terminal
        )
        self._steps = _LiveSteps(self.progress, self.steps_bar)

    def steps(self) -> Subscriber | None:
        return self._steps

    def episode_start(self, index: int, total: int | None) -> None:
        self.progress.update(self.steps_bar, description=f"episode {index + 1} step")

    def episode_end(self, record: EpisodeRecord, records: Sequence[EpisodeRecord]) -> None:
        successes = sum(1 for r in records if r.success == "true")
        self.progress.update(self.episodes_bar, advance=1, note=f"success {successes}/{len(records)}")

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        self.progress.stop()
        try:
            yield
        finally:
            self.progress.start()


def ask_operator(episode_id: str, result: EpisodeResult) -> bool | None:
    said = {True: "success", False: "failure", None: "cannot tell"}[result.success]
    answer = typer.prompt(
        f"episode {episode_id} ended ({result.reason}, {result.steps} steps; robot says: {said}). "
        "Success? [y]es / [n]o / [s]kip",
        default="s",
        show_default=False,
    )
    return {"y": True, "yes": True, "n": False, "no": False}.get(answer.strip().lower())


def run_shown(config: SessionConfig) -> list[EpisodeRecord]:
    """Run a session with the live display; Ctrl-C ends the running episode at once (kept, marked aborted:
    "operator interrupt") and stops the run, a second Ctrl-C interrupts immediately. Prints the summary."""
    records: list[EpisodeRecord] = []
    stop = threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        stop.set()  # the loop ends the episode at the next tick; a second Ctrl-C raises at once
        signal.signal(signal.SIGINT, signal.default_int_handler)

    in_main_thread = threading.current_thread() is threading.main_thread()  # only there can signals be caught
    previous_handler = signal.signal(signal.SIGINT, on_sigint) if in_main_thread else None
    try:
        if config.policy_spec == "server":
            console.print(f"waiting for the version {config.server} wants for {config.robot_id} ...")
        with AgentSession(config, stop_event=stop, ask=ask_operator) as session:
            view = LiveView(config.episodes, config.max_steps or session.robot.max_steps)
            with view.progress:
                records.extend(session.run(view))
    finally:
        if in_main_thread:
            signal.signal(signal.SIGINT, previous_handler)
    if config.store is not None:
        print_summary(config.store, records)
    return records


def print_summary(store_dir: Path, records: Sequence[EpisodeRecord]) -> None:
    table = Table(title=f"{len(records)} episode(s) recorded in {store_dir}")
    for col in ("episode", "seed", "steps", "status", "success", "reason"):
        table.add_column(col)
    for r in records:
        colour = {"true": "green", "false": "red"}.get(r.success, "yellow")
        res = r.result
        table.add_row(r.episode_id, str(r.seed), str(res.steps), res.status, f"[{colour}]{r.success}[/]", res.reason)
    console.print(table)
    done = sum(1 for r in records if r.success == "true")
    console.print(f"success {done}/{len(records)}; list them with: flywheel data ls --store {store_dir}")
