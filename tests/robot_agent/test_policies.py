"""The policies the agent runs without a model, and load_policy's spec strings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from data_store.episodes import EpisodeStore
from data_store.schema import Observation, RobotSpec
from robot_agent.policies import PolicyExhausted, RandomPolicy, ReplayPolicy, ScriptedPolicy, load_policy
from robot_agent.robots.sim import SimRobot
from vla.protocol import Policy

SPEC = RobotSpec(action_dim=2, state_dim=1, action_low=(-1.0, 0.0), action_high=(1.0, 4.0))
OBS = Observation.fake(SPEC)


def test_random_policy_stays_in_the_scaled_bounds() -> None:
    chunk = RandomPolicy(SPEC, chunk_size=64, scale=0.5, seed=0).act(OBS).actions
    assert chunk.shape == (64, 2) and chunk.dtype == np.float32
    assert chunk[:, 0].min() >= -0.5 and chunk[:, 0].max() <= 0.5
    assert chunk[:, 1].min() >= 1.0 and chunk[:, 1].max() <= 3.0
    with pytest.raises(RuntimeError, match="attach"):
        RandomPolicy().act(OBS)


def test_replay_gives_the_actions_in_chunks_then_is_exhausted() -> None:
    actions = np.arange(10, dtype=np.float32).reshape(5, 2)
    replay = ReplayPolicy(actions, chunk_size=2)
    got = [replay.act(OBS).actions for _ in range(3)]
    np.testing.assert_array_equal(np.concatenate(got), actions)
    with pytest.raises(PolicyExhausted):
        replay.act(OBS)
    replay.reset()
    np.testing.assert_array_equal(replay.act(OBS).actions, actions[:2])


def test_load_policy_spec_strings(sim_robot: SimRobot, store_dir: Path) -> None:
    scripted = load_policy("scripted", robot=sim_robot, noise=0.1)
    assert isinstance(scripted, ScriptedPolicy) and isinstance(scripted, Policy)
    sim_robot.home(0)
    chunk = scripted.act(sim_robot.observe()).actions
    assert chunk.shape == (1, 4) and np.all(np.abs(chunk) <= 1)
    random = load_policy("random", robot=sim_robot)
    assert random.act(sim_robot.observe()).actions.shape == (8, 4)
    store = EpisodeStore(store_dir)
    with pytest.raises(ValueError, match="no episode"):
        load_policy("replay:nope", store=store)
    with pytest.raises(ValueError, match="store"):
        load_policy("replay:nope")
    with pytest.raises(ValueError, match="scripted, random"):
        load_policy("gpt-7")
    with pytest.raises(ValueError, match="simulated arm"):
        ScriptedPolicy().attach(object())


def test_a_folder_that_is_not_a_whole_artifact_is_a_clear_error(tmp_path: Path) -> None:
    """A user's mistake (an empty or half-copied folder) is one line at the CLI, not a traceback."""
    from typer.testing import CliRunner

    from flywheel.cli import app
    from robot_agent.policies import load_policy

    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text('{"format": "vla-flywheel/vla-policy/1"}')
    with pytest.raises(ValueError, match=r"is not a policy artifact: manifest\.json: missing"):
        load_policy(str(tmp_path / "half"))
    args = ["robot", "run", "--policy", str(tmp_path / "half"), "--episodes", "1", "--store", str(tmp_path / "s")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "is not a policy artifact" in " ".join(result.output.split())
    assert "Traceback" not in result.output
