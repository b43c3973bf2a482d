"""`flywheel robot run` records episodes into a real store that `flywheel data ls` lists."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
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


def test_ctrl_c_ends_the_run_cleanly_and_keeps_the_episode(store_dir: Path) -> None:
    """A real SIGINT to a real `flywheel robot run` process, once it is recording."""
    args = ["--task", "drawer-close", "--episodes", "5", "--max-steps", "100000", "--policy", "random"]
    cmd = [sys.executable, "-m", "flywheel.cli", "robot", "run", *args, "--store", str(store_dir), "--buffer-s", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            infos = EpisodeStore(store_dir, recover=False).episodes() if store_dir.exists() else []
            if infos and infos[0].length >= 3:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "Traceback" not in output and "operator interrupt" in output
    [info] = EpisodeStore(store_dir).episodes()  # the run stopped: no second episode
    assert info.status == "aborted" and info.reason == "operator interrupt" and info.length >= 3
    assert len(EpisodeStore(store_dir).open(info.episode_id).actions()) == info.length
