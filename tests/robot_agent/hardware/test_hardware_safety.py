"""The safety envelope on its own: limits from YAML, clamping, velocity caps, workspace box, e-stop latch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from robot_agent.hardware_safety import HardwareLimits, HardwareSafety, fake_arm_limits, load_limits
from robot_agent.transports.kinematic_arm import PlanarArm, tool_position

YAML = """
hardware_limits:
  joint_names: [shoulder, elbow]
  position_min: [-1.0, -2.0]
  position_max: [1.0, 2.0]
  max_velocity: [0.5, 1.0]
  home: [0.0, 0.5]
  command_timeout_s: 0.3
"""


def test_limits_load_from_yaml(tmp_path: Path) -> None:
    (tmp_path / "limits.yaml").write_text(YAML)
    limits = load_limits(tmp_path / "limits.yaml")
    assert limits.joint_names == ("shoulder", "elbow") and limits.command_timeout_s == 0.3
    assert limits.workspace is None and limits.home_on_shutdown


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("  home: [0.0, 0.5]", "  home: [0.0, 3.0]"),
        ("  max_velocity: [0.5, 1.0]", "  max_velocity: [0.5, 0.0]"),
        ("  position_min: [-1.0, -2.0]", "  position_min: [-1.0]"),
        ("  home: [0.0, 0.5]", "  home: [0.0, 0.5]\n  speed_limit: 3"),
    ],
)
def test_bad_limits_are_rejected(tmp_path: Path, edit: str, message: str) -> None:
    (tmp_path / "limits.yaml").write_text(YAML.replace(edit, message))
    with pytest.raises(ValidationError):
        load_limits(tmp_path / "limits.yaml")


def _two_joint() -> HardwareSafety:
    return HardwareSafety(
        HardwareLimits(
            joint_names=("a", "b"),
            position_min=(-1.0, -1.0),
            position_max=(1.0, 1.0),
            max_velocity=(1.0, 2.0),
            home=(0.0, 0.0),
        )
    )


def test_position_and_velocity_limits() -> None:
    s = _two_joint()
    v = s.filter(np.zeros(2), np.array([5.0, 0.05]), dt=0.1)
    np.testing.assert_allclose(v.command, [0.1, 0.05], atol=1e-7)  # clamped to 1.0, then 1.0 rad/s × 0.1 s
    assert v.clipped == ("position", "velocity")
    v = s.filter(np.zeros(2), np.array([0.05, -0.15]), dt=0.1)
    assert v.clipped == () and np.allclose(v.command, [0.05, -0.15])
    v = s.filter(np.zeros(2), np.array([np.nan, 0.0]), dt=0.1)
    assert np.all(np.isfinite(v.command)) and "position" in v.clipped


def test_estop_latches_until_reset() -> None:
    s = _two_joint()
    q = np.array([0.3, -0.2])
    s.estop("test")
    for _ in range(3):
        v = s.filter(q, np.array([0.5, 0.5]), dt=0.1)
        np.testing.assert_allclose(v.command, q)
        assert v.clipped == ("estop",)
    s.estop("again")
    assert s.estop_reason == "test"  # the first reason stays
    s.reset()
    assert s.filter(q, np.array([0.35, -0.2]), dt=0.1).clipped == ()


def test_workspace_box_stops_the_tool_at_its_wall() -> None:
    arm = PlanarArm()
    limits = fake_arm_limits()
    s = HardwareSafety(limits, fk=lambda q: tool_position(arm, q))
    assert limits.workspace is not None
    q = np.array(limits.home, dtype=np.float64)
    floor = limits.workspace.min[2]
    # Swing the arm down toward the table, tick by tick: it stops at the box floor, never below.
    lowest = np.inf
    for _ in range(60):
        v = s.filter(q, q + np.array([0.5, 0.0, 0.0, 0.0]), dt=0.1)  # shoulder forward: tool down
        q = v.command.astype(np.float64)
        lowest = min(lowest, tool_position(arm, q)[2])
    assert "workspace" in v.clipped
    assert floor - 1e-6 <= lowest < floor + 0.02
    with pytest.raises(ValueError, match="forward kinematics"):
        HardwareSafety(limits)


def test_path_home_respects_velocity_limits() -> None:
    s = _two_joint()
    q0 = np.array([1.0, -1.0])
    path = s.path_home(q0, dt=0.1)
    steps = np.diff(np.vstack([q0, *path]), axis=0)
    assert np.all(np.abs(steps) <= np.array([0.1, 0.2]) + 1e-6)
    assert s.at_home(path[-1]) and not s.at_home(q0)


def test_command_stream_is_rate_limited_and_kept_near_the_joints() -> None:
    s = _two_joint()  # 1 rad/s and 2 rad/s: 0.1 and 0.2 per 0.1 s tick
    q = np.zeros(2)
    first = s.filter(q, np.array([0.1, 0.2]), dt=0.1)
    assert first.clipped == ()
    # The arm has not moved yet (a lagging driver): the next step is still one tick from the last command…
    second = s.filter(q, np.array([0.5, 0.5]), dt=0.1)
    np.testing.assert_allclose(second.command, [0.2, 0.4], atol=1e-7)
    assert second.clipped == ("velocity",)
    # …but never more than three ticks of motion ahead of the measured joints.
    for _ in range(5):
        last = s.filter(q, np.array([1.0, 1.0]), dt=0.1)
    np.testing.assert_allclose(last.command, [0.3, 0.6], atol=1e-7)
    s.forget()  # after homing: limited around the joints again
    np.testing.assert_allclose(s.filter(q, np.array([1.0, 1.0]), dt=0.1).command, [0.1, 0.2], atol=1e-7)
