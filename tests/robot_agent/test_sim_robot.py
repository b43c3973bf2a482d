"""SimRobot behind the Robot interface: registry, seeded homing, hold keeps the grasp."""

from __future__ import annotations

import numpy as np

from robot_agent.robots.base import robot_names
from robot_agent.robots.sim import SimRobot


def test_registered_as_sim_with_the_arm_spec(sim_robot: SimRobot) -> None:
    assert "sim" in robot_names() and sim_robot.name == "sim"
    assert sim_robot.spec == sim_robot.arm.spec and sim_robot.spec.fps == 10.0
    assert sim_robot.max_steps == sim_robot.task.max_steps


def test_home_is_seeded_and_success_comes_from_the_simulator(sim_robot: SimRobot) -> None:
    a = sim_robot.home(11)
    raw = sim_robot.raw_observation()
    b = sim_robot.home(11)
    np.testing.assert_array_equal(a.images["corner4"], b.images["corner4"])
    np.testing.assert_array_equal(raw, sim_robot.raw_observation())
    assert sim_robot.seed == 11 and sim_robot.success() is False


def test_hold_stops_the_hand_and_keeps_the_gripper_effort(sim_robot: SimRobot) -> None:
    def close_then(step: object) -> np.ndarray:
        sim_robot.home(0)
        for _ in range(20):
            sim_robot.send_action(np.array([0, 0, 0, 1.0], np.float32))  # close the gripper
        closed = sim_robot.observe().state.copy()
        for _ in range(15):
            step()  # type: ignore[operator]
        return sim_robot.observe().state - closed

    held = close_then(sim_robot.hold)
    released = close_then(lambda: sim_robot.send_action(np.zeros(4, np.float32)))
    assert abs(held[3]) < 0.05  # still closed: hold sends the last effort (+1), not 0 ...
    assert released[3] > held[3] + 0.025  # ... which lets the fingers open (slowly: deterministic physics)
    assert np.linalg.norm(held[:3]) < 0.01  # and the hand stays where it is


def test_the_instruction_can_be_fixed(sim_robot: SimRobot) -> None:
    sim_robot.instruction = "close it, please"
    assert sim_robot.home(3).instruction == "close it, please"
    sim_robot.instruction = None
    assert sim_robot.home(3).instruction == sim_robot.task.instruction_for(3)
