"""`flywheel demo --quick`: every stage of the loop runs for real, at the smallest sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from data_store.episodes import EpisodeStore
from flywheel.cli import app


@pytest.mark.slow
def test_quick_demo_runs_the_whole_loop(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output

    report = json.loads((out / "report.json").read_text())
    base, candidate = report["success"]["base"], report["success"]["candidate"]
    assert base["version"].startswith("vla-") and candidate["version"].startswith("vla-")
    # the cycle ran each stage and registered what it trained
    for stage in ("world_model.loss", "reward_model.threshold", "evaluate.imagined_success"):
        assert stage in report["cycle_metrics"], sorted(report["cycle_metrics"])
    # after the rollout call the running robot swapped at an episode boundary: its first episode ran the
    # base, every later one the candidate
    after = report["versions_after_rollout"]
    assert after[0] == base["version"] and set(after[1:]) == {candidate["version"]}

    store = EpisodeStore(out / "episodes")
    demos = store.episodes(policy_version="scripted")
    assert len(demos) == 2 and all(e.success == "true" for e in demos)  # SFT needs successful demonstrations
    deployed = store.episodes(policy_version=base["version"])
    assert len(deployed) >= 4 and all(e.status == "complete" for e in deployed)
    assert (out / "report.png").stat().st_size > 1000 and "| base |" in (out / "report.md").read_text()


def test_unknown_task_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--task", "make-coffee-please", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "make-coffee-please" in result.output and "Traceback" not in result.output
