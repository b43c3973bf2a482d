"""A shared simulated arm for the robot-agent tests (building one costs ~1 s)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from robot_agent.robots.base import make_robot
from robot_agent.robots.sim import SimRobot


@pytest.fixture(scope="session")
def sim_robot() -> Iterator[SimRobot]:
    robot = make_robot("sim", task="drawer-close")
    assert isinstance(robot, SimRobot)
    robot.connect()
    yield robot
    robot.disconnect()
