"""Progress a person can follow, on a terminal or in a log file.

On a terminal, :func:`progress_bar` is rich's live bar. When the output is not a terminal (``nohup``, systemd, CI,
a Celery worker's log) a live bar prints only its last frame, so a 14-minute SFT is silent until it ends; there it
prints one line per task instead, at a steady interval and when the task completes::

    SFT: 120/600 (20%) · 3.1/s · ETA 2m35s · loss 2.41 acc 0.31

The interval is ``FLYWHEEL_PROGRESS_INTERVAL`` seconds (default 30).
"""

from __future__ import annotations

import os
import time
from typing import Any

from rich.console import Console
from rich.progress import Progress, ProgressColumn, TaskID

DEFAULT_INTERVAL_S = 30.0
_FINISHED = float("inf")  # a task's last print time once it was printed as finished


def interval_s() -> float:
    try:
        return max(0.0, float(os.environ.get("FLYWHEEL_PROGRESS_INTERVAL", DEFAULT_INTERVAL_S)))
    except ValueError:
        return DEFAULT_INTERVAL_S


def progress_bar(
    *columns: str | ProgressColumn,
    console: Console | None = None,
    disable: bool = False,
    transient: bool = False,
    interval: float | None = None,
) -> Progress:
    """rich's ``Progress`` on a terminal; :class:`LoggedProgress` (lines at ``interval``) elsewhere."""
    shown_on = console or Console()
    if disable or shown_on.is_terminal:
        return Progress(*columns, console=console, disable=disable, transient=transient)
    return LoggedProgress(*columns, console=shown_on, interval=interval_s() if interval is None else interval)


def describe(task: Any) -> str:
    """One line: description, done/total (share), rate, ETA and the task's extra fields."""
    parts = [f"{task.description}: {task.completed:g}" + (f"/{task.total:g}" if task.total else "")]
    if task.total:
        parts[0] += f" ({task.completed / task.total:.0%})"
    if task.speed:
        parts.append(f"{task.speed:.3g}/s")
    if task.time_remaining is not None and not task.finished:
        parts.append(f"ETA {_duration(task.time_remaining)}")
    parts += [str(v) for v in task.fields.values() if str(v)]
    return " · ".join(parts)


def _duration(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class LoggedProgress(Progress):
    """A ``Progress`` without a live display that prints :func:`describe` lines: on a task's first update, then at
    most every ``interval`` seconds, and once when it finishes (or when the progress stops)."""

    def __init__(self, *columns: str | ProgressColumn, console: Console, interval: float) -> None:
        super().__init__(*columns, console=console, disable=True)
        self._out = console
        self.interval = interval
        self._printed: dict[TaskID, float] = {}
        self._dirty: set[TaskID] = set()

    def update(self, task_id: TaskID, **kwargs: Any) -> None:  # type: ignore[override]
        super().update(task_id, **kwargs)
        self._maybe_print(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._maybe_print(task_id)

    def _maybe_print(self, task_id: TaskID) -> None:
        task = self._tasks[task_id]
        if not task.visible:
            return
        now = time.monotonic()
        last = self._printed.get(task_id)
        if last == _FINISHED:  # printed as finished; a reset task starts a new interval
            if not task.finished:
                self._printed[task_id] = now
                self._dirty.add(task_id)
            return
        if last is None or now - last >= self.interval or task.finished:
            self._print(task_id, final=task.finished)
        else:
            self._dirty.add(task_id)

    def _print(self, task_id: TaskID, final: bool = False) -> None:
        self._out.print(describe(self._tasks[task_id]), highlight=False, soft_wrap=True, markup=False)
        self._printed[task_id] = _FINISHED if final else time.monotonic()
        self._dirty.discard(task_id)

    def stop(self) -> None:
        for task_id in sorted(self._dirty):
            if self._printed.get(task_id) != _FINISHED and self._tasks[task_id].visible:
                self._print(task_id, final=True)
        super().stop()
