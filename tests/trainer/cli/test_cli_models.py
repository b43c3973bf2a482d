"""``flywheel train world-model`` / ``train reward-model`` on a real store: tables printed, JSON lines parse, a
killed run resumes, user mistakes are one red line and no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flywheel.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def store_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real drawer-close episodes: two that succeed, two that run out of steps."""
    from data_store.episodes import EpisodeStore
    from trainer.world_model.recording import NoisyExpertPlan, record_noisy_expert

    root = tmp_path_factory.mktemp("cli_store")
    s = EpisodeStore(root)
    record_noisy_expert(s, "drawer-close", 2, NoisyExpertPlan(noise_levels=(0.0,), min_steps=150, max_steps=150))
    record_noisy_expert(s, "drawer-close", 2, NoisyExpertPlan(noise_levels=(0.0,), min_steps=20, max_steps=20), seed=7)
    return root


def flat(output: str) -> str:
    """The output with rich's panel borders and line wrapping removed, so a message reads as one line."""
    return " ".join(output.replace("│", " ").replace("╭", " ").replace("╰", " ").split())


def json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith('{"name"')]


def test_train_world_model_then_reward_model_with_agreement(store_root: Path, tmp_path: Path) -> None:
    wm = tmp_path / "wm"
    args = ["train", "world-model", "--data", str(store_root), "--out", str(wm), "--preset", "tiny"]
    r = runner.invoke(app, [*args, "--steps", "2", "--held-out", "0.5", "--json", "--threads", "1"])
    assert r.exit_code == 0, r.output
    assert "open-loop replay" in r.output and "65+" in r.output  # the 150-step successes reach the last bucket
    rows = json_lines(r.output)
    assert {row["figure"] for row in rows if row["name"] == "world_model/replay_quality"} == {
        "psnr",
        "ssim",
        "feature_distance",
    }
    assert (wm / "model.safetensors").exists() and (wm / "checkpoint" / "train_state.json").exists()
    # resume after the run ended at step 2: continue to step 3
    r = runner.invoke(app, [*args, "--steps", "3", "--resume", "--held-out", "0.5"])
    assert r.exit_code == 0, r.output
    assert json.loads((wm / "checkpoint" / "train_state.json").read_text())["step"] == 3

    rm_args = ["train", "reward-model", "--data", str(store_root), "--out", str(tmp_path / "rm"), "--preset", "tiny"]
    r = runner.invoke(
        app, [*rm_args, "--steps", "3", "--held-out", "0.5", "--world-model", str(wm), "--train-on-imagined", "--json"]
    )
    assert r.exit_code == 0, r.output
    assert "success agreement" in r.output and "precision" in r.output and "+2 imagined" in r.output
    names = {row["name"] for row in json_lines(r.output)}
    assert {"reward_model/frame", "reward_model/episode", "imagination/success_agreement"} <= names


def test_user_mistakes_are_one_line(store_root: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["train", "world-model", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert r.exit_code != 0 and "no episode store" in flat(r.output) and "Traceback" not in flat(r.output)
    r = runner.invoke(
        app, ["train", "world-model", "--data", str(store_root), "--out", str(tmp_path / "o"), "--preset", "huge"]
    )
    assert r.exit_code != 0 and "unknown preset" in flat(r.output)
    r = runner.invoke(
        app, ["train", "world-model", "--data", str(store_root), "--out", str(tmp_path / "o"), "--task", "no-such"]
    )
    assert r.exit_code == 1 and "no complete episodes" in flat(r.output)
    r = runner.invoke(
        app, ["train", "world-model", "--data", str(store_root), "--out", str(tmp_path / "o"), "--resume"]
    )
    assert r.exit_code != 0 and "nothing to resume" in flat(r.output)
    r = runner.invoke(
        app, ["train", "reward-model", "--data", str(store_root), "--out", str(tmp_path / "r"), "--train-on-imagined"]
    )
    assert r.exit_code != 0 and "needs --world-model" in flat(r.output)
    r = runner.invoke(app, ["bench", "world-model", "--sampling-steps", "0,2"])
    assert r.exit_code != 0 and "1..10" in flat(r.output)


def test_bench_prints_world_model_and_simulator_side_by_side() -> None:
    args = ["--preset", "tiny", "--batch", "2", "--sampling-steps", "1,2", "--seconds", "0.5", "--train-steps", "1"]
    r = runner.invoke(app, ["bench", "world-model", *args, "--threads", "1"])
    assert r.exit_code == 0, r.output
    rows = json_lines(r.output)
    figures = {(row["name"], row["figure"], row["config"].get("sampling_steps")) for row in rows}
    assert ("sim/drawer-close", "step_render_rate", None) in figures
    assert {("world_model/imagine", "frames_per_s", s) for s in (1, 2)} <= figures
    assert ("world_model/train", "steps_per_s", None) in figures
    assert all(row["value"] > 0 and row["machine"]["cores"] for row in rows)
