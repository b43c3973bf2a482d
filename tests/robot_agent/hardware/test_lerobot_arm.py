"""LeRobot arms: a clear install line without lerobot; the feature mapping through any lerobot-shaped robot."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from data_store.optional import MissingDependency
from robot_agent.robots.base import make_robot
from tests.conftest import need

HAVE_LEROBOT = importlib.util.find_spec("lerobot") is not None


def test_missing_lerobot_names_the_install_command() -> None:
    if HAVE_LEROBOT:
        pytest.skip("lerobot is installed here")
    with pytest.raises(MissingDependency) as e:
        make_robot("lerobot", robot_type="so101_follower", port="/dev/ttyACM0")
    assert "pip install 'lerobot" in str(e.value) and "3.12" in str(e.value)


class So101Shaped:
    """What lerobot's Robot offers (features, connect, get_observation, send_action, disconnect),
    with motors that move to their goal at once: the stand-in for the serial bus."""

    motors = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")

    def __init__(self) -> None:
        self.pos = {f"{m}.pos": 0.0 for m in self.motors}
        self.sent: list[dict[str, float]] = []
        self.connected = False

    @property
    def observation_features(self) -> dict:
        return {**{k: float for k in self.pos}, "front": (8, 10, 3)}

    @property
    def action_features(self) -> dict:
        return {k: float for k in self.pos}

    def connect(self) -> None:
        self.connected = True

    def get_observation(self) -> dict:
        return {**self.pos, "front": np.full((8, 10, 3), 7, np.uint8)}

    def send_action(self, action: dict[str, float]) -> dict[str, float]:
        self.sent.append(action)
        self.pos.update(action)
        return action

    def disconnect(self) -> None:
        self.connected = False


def test_features_map_to_state_images_and_actions(tmp_path) -> None:
    fake = So101Shaped()
    (tmp_path / "so101.yaml").write_text(
        "joint_names: [shoulder_pan, shoulder_lift, elbow_flex, wrist_flex, wrist_roll, gripper]\n"
        "position_min: [-100, -100, -100, -100, -100, 0]\nposition_max: [100, 100, 100, 100, 100, 100]\n"
        "max_velocity: [200, 200, 200, 200, 200, 300]\nhome: [0, -50, 50, 0, 0, 10]\n"
    )
    robot = make_robot("lerobot", lerobot_robot=fake, fps=200.0, limits=str(tmp_path / "so101.yaml"))
    assert robot.spec.state_dim == robot.spec.action_dim == 6 and robot.spec.cameras == {"front": (8, 10)}
    with robot:
        obs = robot.observe()
        assert obs.images["front"].shape == (8, 10, 3) and obs.state.dtype == np.float32
        robot.send_action(np.float32([500, 0, 0, 0, 0, 50]))  # beyond the joint limit and the velocity cap
        assert fake.sent[-1]["shoulder_pan.pos"] == pytest.approx(1.0)  # 200 units/s × 1/200 s
        assert fake.sent[-1]["gripper.pos"] == pytest.approx(1.5)
    assert not fake.connected
    assert [fake.pos[f"{m}.pos"] for m in fake.motors] == pytest.approx([0, -50, 50, 0, 0, 10])  # went home


def test_a_real_lerobot_config_builds() -> None:
    # lerobot is not in the project's venv (its torch and torchvision would replace ours): the test command runs this
    # against lerobot 0.4.4 in .venv-lerobot (tests/against_lerobot/test_arm_and_policy.py, a real SO-101 follower)
    need(HAVE_LEROBOT, "lerobot here (CI checks it in .venv-lerobot: tests/against_lerobot)", optional_in_ci=True)
    robot = make_robot("lerobot", robot_type="so101_follower", port="/dev/null", id="test")
    assert robot.spec.action_dim == 6


def test_lerobot_config_from_yaml(tmp_path, monkeypatch) -> None:
    from robot_agent.robots.lerobot_arm import CONFIG_ENV, load_lerobot_config

    (tmp_path / "so101.yaml").write_text(
        "robot_type: so101_follower\nfps: 15\nlimits: limits.yaml\nconfig: {port: /dev/ttyACM0, id: left}\n"
    )
    kwargs = load_lerobot_config(tmp_path / "so101.yaml")
    assert kwargs == {
        "robot_type": "so101_follower",
        "fps": 15,
        "limits": str(tmp_path / "limits.yaml"),
        "port": "/dev/ttyACM0",
        "id": "left",
    }
    (tmp_path / "bad.yaml").write_text("robot: so101\n")
    with pytest.raises(ValueError, match="unknown keys"):
        load_lerobot_config(tmp_path / "bad.yaml")
    if not HAVE_LEROBOT:  # the file is read, then the missing library is named
        monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "so101.yaml"))
        with pytest.raises(MissingDependency):
            make_robot("lerobot")
