"""Progress in a log: when the output is not a terminal, long work prints lines at a steady interval."""

from __future__ import annotations

import io

from rich.console import Console
from rich.progress import BarColumn, TextColumn

from data_store.progress import LoggedProgress, progress_bar


def test_a_terminal_gets_the_live_bar_and_a_log_gets_lines() -> None:
    terminal = Console(file=io.StringIO(), force_terminal=True)
    assert not isinstance(progress_bar(console=terminal), LoggedProgress)
    assert not isinstance(progress_bar(console=Console(file=io.StringIO()), disable=True), LoggedProgress)
    log = io.StringIO()
    bar = progress_bar(TextColumn("x"), BarColumn(), console=Console(file=log, width=200), interval=3600)
    assert isinstance(bar, LoggedProgress)
    with bar:
        job = bar.add_task("SFT", total=600, loss="…")
        for step in range(600):
            bar.update(job, advance=1, loss=f"loss {3 - step / 300:.2f}")
        hidden = bar.add_task("step", total=10, visible=False)
        bar.update(hidden, completed=5)
    lines = log.getvalue().splitlines()
    # the first update, then (the interval being an hour) only the finished line; the hidden task says nothing
    assert lines[0].startswith("SFT: 1/600 (0%)") and "loss 3.00" in lines[0]
    assert lines[-1].startswith("SFT: 600/600 (100%)") and "loss 1.00" in lines[-1] and "ETA" not in lines[-1]
    assert len(lines) == 2 and not any(line.startswith("step") for line in lines)


def test_lines_come_at_the_interval_and_a_reset_task_starts_again() -> None:
    log = io.StringIO()
    with progress_bar(console=Console(file=log, width=200), interval=0) as bar:
        job = bar.add_task("episodes", total=3)
        for _ in range(3):
            bar.advance(job)
        bar.reset(job)
        bar.update(job, completed=1)
    lines = log.getvalue().splitlines()
    assert [line.split(" ·")[0] for line in lines] == [
        "episodes: 1/3 (33%)", "episodes: 2/3 (67%)", "episodes: 3/3 (100%)", "episodes: 1/3 (33%)"
    ]  # fmt: skip
