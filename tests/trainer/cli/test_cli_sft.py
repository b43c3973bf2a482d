"""`flywheel train sft` end to end, then the trained artifact drives the simulated arm via `flywheel robot run`."""

from __future__ import annotations

from pathlib import Path

import pytest
from sft_helpers import demo_store
from typer.testing import CliRunner

from data_store.episodes import EpisodeStore
from flywheel.cli import app
from vla.artifact import verify_artifact


@pytest.mark.slow  # trains a tiny policy and runs a real MuJoCo episode
def test_train_sft_then_robot_run_with_the_artifact(tmp_path: Path) -> None:
    demo_store(tmp_path / "demos")
    runner = CliRunner()
    out = tmp_path / "policy"
    args = ["train", "sft", "--data", str(tmp_path / "demos"), "--out", str(out), "--preset", "tiny"]
    result = runner.invoke(app, [*args, "--steps", "6", "--batch", "8", "--eval-episodes", "0"])
    assert result.exit_code == 0, result.output
    version = verify_artifact(out)["version"]

    store = tmp_path / "episodes"
    run = ["robot", "run", "--policy", str(out), "--task", "drawer-close", "--episodes", "1", "--max-steps", "8"]
    result = runner.invoke(app, [*run, "--store", str(store)])
    assert result.exit_code == 0, result.output
    (info,) = EpisodeStore(store).episodes()
    assert info.policy_version == version and info.length == 8 and info.task == "drawer-close"


def test_user_mistakes_are_one_line_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["train", "sft", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "p")])
    assert result.exit_code != 0 and "not an episode store folder" in result.output
    result = runner.invoke(
        app, ["train", "sft", "--data", str(tmp_path), "--out", str(tmp_path / "p"), "--preset", "huge"]
    )
    assert result.exit_code != 0 and "unknown preset" in result.output
    EpisodeStore(tmp_path / "empty")
    result = runner.invoke(app, ["train", "sft", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "p")])
    assert result.exit_code == 1 and "no successful episodes" in result.output
    assert "Traceback" not in result.output
