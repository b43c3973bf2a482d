"""Safety on hardware, each guard tested against the fake driver process over DDS (ROS 2 topics)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from robot_agent import ros_mapping
from robot_agent.robots.base import make_robot
from robot_agent.robots.dds import RobotFault
from robot_agent.transports import dds
from robot_agent.transports.kinematic_arm import PlanarArm
from tests.robot_agent.hardware.conftest import LENIENT, DriverProcess, start_driver

HOME = np.array(PlanarArm().home, dtype=np.float32)


def _settle(robot, seconds: float) -> np.ndarray:
    """Watch the joint states for a while without commanding; the last position."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        q = robot.joint_positions()
        time.sleep(0.02)
    return q


def test_observations_are_the_drivers_joints_and_pictures(driver: DriverProcess) -> None:
    with make_robot("dds", domain_id=driver.domain_id, instruction="touch the block", **LENIENT) as robot:
        obs = robot.home()
        np.testing.assert_allclose(obs.state, HOME, atol=0.02)
        rgb, depth = obs.images["side"], obs.depth["side"]
        assert rgb.shape == (64, 64, 3) and depth.shape == (64, 64) and depth.dtype == np.uint16
        assert obs.instruction == "touch the block" and obs.timestamp > 1e9  # the driver's stamp
        # Move the shoulder: the picture and the measured joints follow.
        for _ in range(6):
            robot.send_action(HOME + np.float32([0.6, 0, 0, 0]))
        time.sleep(0.3)
        later = robot.observe()
        assert later.state[0] > HOME[0] + 0.3
        assert np.mean(later.images["side"] != rgb) > 0.01
        assert robot.driver_status()["commands"] >= 6


def test_driver_holds_when_commands_go_stale(driver: DriverProcess) -> None:
    """A far target sent once (as by an agent that then hangs): the driver moves for its command timeout
    (0.25 s at 1.5 rad/s, about 0.4 rad) and holds, well short of the target."""
    with make_robot("dds", domain_id=driver.domain_id, **LENIENT) as robot:
        robot.home()
        msgs = dds.messages()
        raw = robot.domain.publisher(robot.config.topics.trajectory_command, msgs.JointTrajectory)  # no safety filter
        target = HOME + np.float32([1.25, 0, 0, 0])
        raw.publish(ros_mapping.action_to_trajectory_fields(target, robot.config.joint_names, 2.0))
        q1 = _settle(robot, 1.2)
        q2 = _settle(robot, 0.5)
        status = robot.driver_status()
        assert status["stale"] is True
        assert HOME[0] + 0.02 < q1[0] < target[0] - 0.5  # it moved, then stopped early
        np.testing.assert_allclose(q2, q1, atol=1e-6)  # and holds


def test_estop_latches_in_agent_and_driver(driver: DriverProcess) -> None:
    with make_robot("dds", domain_id=driver.domain_id, **LENIENT) as robot:
        robot.home()
        robot.estop("test")
        dds.wait_for(lambda: robot.driver_status().get("estop") is True, 10.0, "the driver to latch its e-stop")
        q0 = robot.joint_positions()
        msgs = dds.messages()
        raw = robot.domain.publisher(robot.config.topics.trajectory_command, msgs.JointTrajectory)
        for _ in range(5):
            robot.send_action(HOME + np.float32([0.5, 0, 0, 0]))  # agent side: held
            assert robot.last_verdict is not None and robot.last_verdict.clipped == ("estop",)
            raw.publish(ros_mapping.action_to_trajectory_fields(HOME + 0.5, robot.config.joint_names, 0.1))
        q1 = _settle(robot, 0.5)
        np.testing.assert_allclose(q1, q0, atol=1e-6)
        status = robot.driver_status()
        assert status["estop"] is True and status["rejected"] >= 5
        with pytest.raises(RobotFault, match="e-stop"):
            robot.home()
        robot.reset_estop()
        dds.wait_for(lambda: robot.driver_status().get("estop") is False, 10.0, "the driver to release its e-stop")
        for _ in range(5):
            robot.send_action(HOME + np.float32([0.5, 0, 0, 0]))
        time.sleep(0.3)
        assert robot.joint_positions()[0] > q0[0] + 0.2


def test_array_commands_and_return_home_on_shutdown() -> None:
    d = start_driver("--command-kind", "array")
    try:
        robot = make_robot("dds", preset="fake-arm-array", domain_id=d.domain_id, **LENIENT)
        robot.connect()
        robot.home()
        for _ in range(8):
            robot.send_action(HOME + np.float32([-0.8, -0.5, 0.4, -0.9]))
        # the joint states follow at the driver's rate: on a loaded machine the newest may still be the old pose
        dds.wait_for(lambda: np.max(np.abs(robot.joint_positions() - HOME)) > 0.4, 5.0, "the arm to move away")
        robot.disconnect()  # drives home first
        robot.disconnect()  # twice is fine
        watcher = dds.RosDomain(d.domain_id)
        try:
            sub = watcher.subscription("/driver_status", dds.messages().String, dds.LATCHED)
            status = json.loads(sub.wait(5.0, after_count=2).data)  # fresh: status comes at 10 Hz
        finally:
            watcher.close()
        np.testing.assert_allclose(status["position"], HOME, atol=0.03)
    finally:
        d.stop()


def test_a_dead_driver_is_a_fault_not_a_frozen_picture() -> None:
    d = start_driver()
    robot = make_robot("dds", domain_id=d.domain_id, **LENIENT)
    robot.connect()
    robot.observe()
    assert d.stop() == 0  # SIGTERM: the driver exits cleanly
    time.sleep(LENIENT["state_timeout_s"] + 0.5)
    with pytest.raises(RobotFault, match="joint states"):
        robot.observe()
    robot.disconnect()  # cannot home a dead driver; still releases the domain


def test_no_driver_on_the_domain_is_a_clear_error() -> None:
    from tests.conftest import need
    from tests.robot_agent.hardware.conftest import _DOMAINS, have_dds

    need(have_dds(), "cyclonedds and ros2-pyterfaces")
    robot = make_robot("dds", domain_id=next(_DOMAINS), connect_timeout_s=0.5)
    with pytest.raises(RobotFault, match="is the arm driver running"):
        robot.connect()


def test_cli_with_no_driver_answering_ends_with_one_line(tmp_path: Path) -> None:
    """``flywheel robot run --robot dds`` with nothing on the domain: one line naming the topic and the domain."""
    from tests.conftest import need
    from tests.robot_agent.hardware.conftest import _DOMAINS, ROOT, have_dds

    need(have_dds(), "cyclonedds and ros2-pyterfaces")
    domain = next(_DOMAINS)
    args = ["robot", "run", "--robot", "dds", "--policy", "random", "--episodes", "1", "--connect-timeout", "1"]
    result = subprocess.run(
        [sys.executable, "-m", "flywheel.cli", *args, "--store", str(tmp_path / "store")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "ROS_DOMAIN_ID": str(domain), "COLUMNS": "200"},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    out = " ".join((result.stdout + result.stderr).split())
    assert f"no messages on /joint_states within 1 s (ROS domain {domain}): is the arm driver running" in out, out
    assert "Traceback" not in out
