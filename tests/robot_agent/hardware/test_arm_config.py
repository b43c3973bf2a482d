"""A real arm's description in YAML (topics, joints, limits), also through `flywheel robot run --robot dds`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from data_store.episodes import EpisodeStore
from robot_agent.robots.dds import CONFIG_ENV, load_arm_config, make_config
from tests.robot_agent.hardware.conftest import start_driver

LIMITS = """
joint_names: [shoulder, elbow, wrist, gripper]
position_min: [-1.0, -2.0, -2.0, 0.0]
position_max: [1.0, 2.0, 2.0, 1.0]
max_velocity: [0.5, 0.5, 0.5, 0.5]
home: [0.3, 1.1, 0.9, 1.0]
"""
ARM = """
joint_names: [shoulder, elbow, wrist, gripper]
command_kind: array
topics: {array_command: /forward_position_controller/commands, color: /camera/camera/color/image_raw}
camera: side
image_size: [64, 64]
depth: false
fps: 10
limits: limits.yaml
"""


def _write(tmp_path: Path) -> Path:
    (tmp_path / "limits.yaml").write_text(LIMITS)
    (tmp_path / "arm.yaml").write_text(ARM)
    return tmp_path / "arm.yaml"


def test_arm_config_from_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_arm_config(_write(tmp_path))
    assert (config.command_kind, config.image_size, config.depth, config.kinematics) == ("array", (64, 64), False, None)
    assert config.limits == str(tmp_path / "limits.yaml")
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "arm.yaml"))
    assert make_config() == config  # no preset named: the file
    assert make_config("fake-arm").command_kind == "trajectory"  # a named preset wins
    (tmp_path / "bad.yaml").write_text(ARM + "speed: 3\n")
    with pytest.raises(ValueError, match=r"unknown keys \['speed'\]"):
        load_arm_config(tmp_path / "bad.yaml")
    (tmp_path / "bad.yaml").write_text(ARM.replace("array_command", "arm_command"))
    with pytest.raises(ValueError, match="unknown topics"):
        load_arm_config(tmp_path / "bad.yaml")


def test_robot_run_cli_drives_an_arm_described_in_yaml(tmp_path: Path) -> None:
    driver = start_driver("--command-kind", "array", "--no-depth")
    try:
        env = {**os.environ, CONFIG_ENV: str(_write(tmp_path)), "ROS_DOMAIN_ID": str(driver.domain_id)}
        run = subprocess.run(
            [sys.executable, "-m", "flywheel.cli", "robot", "run", "--robot", "dds", "--policy", "random",
             "--episodes", "1", "--max-steps", "8", "--store", str(tmp_path / "store"), "--label", "none"],
            env=env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
    finally:
        driver.stop()
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    (info,) = EpisodeStore(tmp_path / "store").episodes()
    assert info.length == 8 and info.spec.depth_cameras == {}
    assert info.spec.action_high == (1.0, 2.0, 2.0, 1.0)  # the limits file's, not the preset's
