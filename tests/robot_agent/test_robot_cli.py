"""`flywheel robot run` records episodes into a real store that `flywheel data ls` lists."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from data_store.episodes import EpisodeStore
from flywheel.cli import app


def test_robot_run_records_episodes_that_data_ls_lists(store_dir: Path) -> None:
    runner = CliRunner()
    args = ["robot", "run", "--task", "reach", "--policy", "scripted", "--episodes", "2", "--max-steps", "20"]
    result = runner.invoke(app, [*args, "--store", str(store_dir), "--seed", "4"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    infos = sorted(EpisodeStore(store_dir).episodes(), key=lambda i: i.started_at)
    assert len(infos) == 2
    assert [i.meta["seed"] for i in infos] == [4, 5]
    assert all(i.status == "complete" and i.task == "reach" and 0 < i.length <= 20 for i in infos)
    assert infos[0].episode_id in result.output and "recorded in" in result.output
    listed = runner.invoke(app, ["data", "ls", "--store", str(store_dir)], env={"COLUMNS": "300"})
    assert listed.exit_code == 0, listed.output
    assert all(i.episode_id in listed.output for i in infos)


def test_operator_labels_each_episode_when_asked(store_dir: Path) -> None:
    args = ["robot", "run", "--task", "drawer-close", "--policy", "random", "--episodes", "2", "--max-steps", "5"]
    result = CliRunner().invoke(app, [*args, "--store", str(store_dir), "--label", "ask"], input="y\nn\n")
    assert result.exit_code == 0, result.output
    infos = sorted(EpisodeStore(store_dir).episodes(), key=lambda i: i.started_at)
    assert [i.success for i in infos] == ["true", "false"]
    assert all(i.meta.get("labelled_by") == "operator" for i in infos)


def test_user_mistakes_are_one_line_errors(store_dir: Path) -> None:
    runner = CliRunner()
    bad_task = runner.invoke(app, ["robot", "run", "--task", "juggle", "--store", str(store_dir)])
    assert bad_task.exit_code != 0 and "unknown task" in bad_task.output
    bad_policy = runner.invoke(app, ["robot", "run", "--policy", "gpt-7", "--store", str(store_dir)])
    assert bad_policy.exit_code != 0 and "unknown policy" in bad_policy.output
    bad_robot = runner.invoke(app, ["robot", "run", "--robot", "r2d2", "--store", str(store_dir)])
    assert bad_robot.exit_code != 0 and "unknown robot" in bad_robot.output
    for r in (bad_task, bad_policy, bad_robot):
        assert "Traceback" not in r.output
