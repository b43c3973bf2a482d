"""A robot that faults gives the operator one line, not a traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from data_store.schema import Observation, RobotSpec
from flywheel.cli import app
from robot_agent.robots.base import Robot, RobotFault, register_robot


@register_robot("test-faulty")
class FaultyRobot(Robot):
    """Connects to nothing: like an arm whose driver is not running."""

    def __init__(self, **_: object) -> None:
        self._spec = RobotSpec(action_dim=2, state_dim=2, action_low=(-1.0, -1.0), action_high=(1.0, 1.0))

    @property
    def spec(self) -> RobotSpec:
        return self._spec

    def connect(self) -> None:
        raise RobotFault("no messages on /joint_states within 1 s: is the arm driver running?")

    def home(self, seed: int | None = None) -> Observation:
        raise AssertionError("never connected")

    def observe(self) -> Observation:
        raise AssertionError("never connected")

    def send_action(self, action: np.ndarray) -> None:
        raise AssertionError("never connected")

    def disconnect(self) -> None:
        pass


def test_fault_is_one_line(tmp_path: Path) -> None:
    args = ["robot", "run", "--robot", "test-faulty", "--policy", "random", "--store", str(tmp_path / "s")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "is the arm driver running?" in " ".join(result.output.split())
    assert "Traceback" not in result.output
