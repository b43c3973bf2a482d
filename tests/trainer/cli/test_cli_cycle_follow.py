"""``flywheel train cycle --wait`` into a log file (not a terminal): progress lines at a steady interval, not a live
view that a log shows only when it ends."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from trainer.cli.service import _follow, progress_line
from trainer.service.progress import create_run, update_run, update_stage
from trainer.service.settings import load_settings


def test_a_followed_run_prints_lines_with_the_stage_at_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLYWHEEL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FLYWHEEL_REGISTRY_URL", f"sqlite:///{tmp_path / 'registry.db'}")
    monkeypatch.setenv("FLYWHEEL_PROGRESS_INTERVAL", "0")
    settings = load_settings()
    create_run(settings, "r1", {"task": "t"}, ["world_model", "grpo"], "cli")
    update_run(settings, "r1", state="running")
    update_stage(settings, "r1", "world_model", state="running", step=750, total=3000, metrics={"loss": 0.0191})

    def finish() -> None:
        time.sleep(1.0)
        update_stage(settings, "r1", "world_model", state="done", step=3000, total=3000)
        update_run(settings, "r1", state="succeeded")

    threading.Thread(target=finish).start()
    record = _follow("r1", every_s=0.1)
    assert record["state"] == "succeeded"
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(line.startswith("run r1 running · ") for line in lines)
    assert "world_model 750/3000 (25%) loss=0.0191" in lines[0] and "0/3 stages done" in lines[0]


def test_progress_line_names_each_stage_at_work() -> None:
    record = {
        "run_id": "r2",
        "state": "running",
        "progress": [
            {"stage": "snapshot", "state": "done"},
            {"stage": "world_model", "state": "running", "step": 10, "total": None, "metrics": {"loss_ci95": 1.0}},
            {"stage": "reward_model", "state": "running", "step": 5, "total": 20, "metrics": {}},
        ],
    }
    line = progress_line(record)
    assert line == "run r2 running · 1/3 stages done · world_model 10/? · reward_model 5/20 (25%)"


def test_the_run_view_shows_the_imagination_check_as_one_line() -> None:
    """The GRPO stage records ~25 agreement_* figures; the operator's view shows its one line, not the columns."""
    from rich.console import Console

    from trainer.cli.service import status_view

    line = "action-replay agreement over 64 imagined trajectories: outcome 0.73 (imagined 27% vs replayed 0%)"
    record = {
        "run_id": "r1",
        "state": "succeeded",
        "progress": [{"stage": "grpo", "state": "done", "step": 8, "total": 8,
                      "metrics": {"loss": 0.03, "agreement_outcome_agreement": 0.73, "agreement_false_success": 0.27}}],
        "results": {"grpo": {"info": {"agreement": line}}},
    }  # fmt: skip
    console = Console(record=True, width=200)
    console.print(status_view(record))
    out = console.export_text()
    assert "loss=0.03" in out and "agreement_outcome" not in out
    assert f"imagination vs the arm: {line}" in out
