"""The agent node over real DDS: its lifecycle, the RunTask action, e-stop, cancel, a silent driver, bad
parameters, both ros2_control command interfaces, and ``flywheel ros agent``."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from action_msgs.msg import GoalStatus
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from data_store.episodes import EpisodeStore
from tests.ros.conftest import (
    ROOT,
    Agent,
    Proc,
    Ros,
    driver_status,
    loopback_env,
    main_python,
    start_driver,
    start_node,
)

HOME = [0.3, 1.1, 0.9, 1.0]  # the shipped limits' home pose (config/agent.yaml, the fake driver's)


@pytest.fixture
def driver(domain: int) -> Iterator[Proc]:
    d = start_driver(domain)
    yield d
    d.stop()


@pytest.fixture
def agent(domain: int, ros: Ros, driver: Proc, tmp_path: Path) -> Iterator[Agent]:
    """The node, configured and active, against the fake driver."""
    proc = start_node(domain, tmp_path / "store")
    a = Agent(ros, proc)
    assert a.transition("configure") and a.transition("activate"), proc.output()[-3000:]
    yield a
    assert proc.stop() == 0, proc.output()[-3000:]


def _run_until_feedback(agent: Agent, max_steps: int, steps: int) -> tuple[Any, list[Any]]:
    feedback: list[Any] = []
    handle = agent.send_goal(max_steps, feedback)
    assert handle.accepted
    agent.ros.spin_while(lambda: len(feedback) < steps, 60, f"{steps} feedback messages")
    return handle, feedback


def test_lifecycle_through_its_services(domain: int, ros: Ros, driver: Proc, tmp_path: Path) -> None:
    proc = start_node(domain, tmp_path / "store")
    agent = Agent(ros, proc)
    assert agent.state() == "unconfigured"
    for transition, state in [
        ("configure", "inactive"),
        ("activate", "active"),
        ("deactivate", "inactive"),
        ("activate", "active"),
        ("deactivate", "inactive"),
        ("cleanup", "unconfigured"),
        ("configure", "inactive"),
        ("cleanup", "unconfigured"),
        ("shutdown", "finalized"),
    ]:
        assert agent.transition(transition), f"{transition}: {proc.output()[-2000:]}"
        assert agent.state() == state
    assert proc.stop() == 0, proc.output()[-3000:]
    assert "Traceback" not in proc.output()


def test_goal_gives_feedback_and_a_result_that_names_the_recorded_episode(agent: Agent, tmp_path: Path) -> None:
    ros = agent.ros
    commands: list[JointTrajectory] = []
    states: list[JointState] = []
    ros.node.create_subscription(JointTrajectory, "/arm_controller/joint_trajectory", commands.append, 100)
    ros.node.create_subscription(JointState, "/joint_states", states.append, 100)
    ros.spin_while(lambda: not states, 20, "joint states")
    feedback: list[Any] = []
    handle = agent.send_goal(12, feedback, instruction="touch the red block")
    assert handle.accepted
    answer = agent.result(handle)
    ros.spin_for(0.5)  # the last commands in flight
    result = answer.result
    assert answer.status == GoalStatus.STATUS_SUCCEEDED
    assert (result.steps, result.reason) == (12, "max steps")
    assert result.outcome in ("success", "failure")  # the driver's verdict (its /driver_status)
    assert [f.step for f in feedback] == list(range(1, 13))
    assert all(f.max_steps == 12 for f in feedback) and feedback[-1].elapsed_s > 0

    store = EpisodeStore(tmp_path / "store", create=False)
    info = store.info(result.episode_id)
    assert info.status == "complete" and info.length == 12
    assert (info.task, info.instruction, info.robot_id) == ("touch-block", "touch the red block", "ros-arm-0")
    assert info.policy_version == "random"
    episode = store.open(result.episode_id)
    # what went on the wire is what the store holds: each recorded action is a JointTrajectory the arm received
    assert len(commands) >= 12
    wire = np.array([c.points[-1].positions for c in commands], dtype=np.float32)
    for action in episode.actions():
        assert np.abs(wire - action).max(axis=1).min() < 1e-6, action
    assert all(list(c.joint_names) == ["shoulder", "elbow", "wrist", "gripper"] for c in commands)
    assert all(c.points[-1].time_from_start.nanosec == 100_000_000 for c in commands[:12])  # 1 / fps
    # and each recorded state is a joint state the driver published
    published = np.array([s.position for s in states], dtype=np.float32)
    for state in episode.states():
        assert np.abs(published - state).max(axis=1).min() < 1e-6, state
    images = episode.images("side")
    assert images.shape == (12, 64, 64, 3) and images.std() > 0


def test_estop_aborts_the_goal_and_rejects_goals_until_reset(agent: Agent) -> None:
    handle, _ = _run_until_feedback(agent, 400, 3)
    answer = agent.trigger("estop")
    assert answer.success, answer.message
    result = agent.result(handle)
    assert result.status == GoalStatus.STATUS_ABORTED
    assert result.result.outcome == "aborted" and "estop" in result.result.reason
    assert driver_status(agent.ros)["estop"] is True  # latched in the driver too
    assert not agent.send_goal(10).accepted
    assert agent.trigger("reset").success
    assert driver_status(agent.ros)["estop"] is False
    handle = agent.send_goal(5)
    assert handle.accepted
    assert agent.result(handle).status == GoalStatus.STATUS_SUCCEEDED


def test_cancel_ends_the_goal_canceled_and_keeps_the_episode(agent: Agent, tmp_path: Path) -> None:
    handle, _ = _run_until_feedback(agent, 400, 3)
    agent.ros.spin_until(handle.cancel_goal_async())
    answer = agent.result(handle)
    assert answer.status == GoalStatus.STATUS_CANCELED
    assert answer.result.outcome == "aborted" and answer.result.reason == "canceled"
    info = EpisodeStore(tmp_path / "store", create=False).info(answer.result.episode_id)
    assert info.status == "aborted" and 3 <= info.length < 400
    assert agent.send_goal(3).accepted  # the next goal runs


def test_goal_while_inactive_is_rejected(domain: int, ros: Ros, driver: Proc, tmp_path: Path) -> None:
    proc = start_node(domain, tmp_path / "store")
    agent = Agent(ros, proc)
    assert agent.transition("configure")
    assert not agent.send_goal(5).accepted
    assert agent.transition("activate")
    assert agent.send_goal(2).accepted
    assert proc.stop() == 0


def test_driver_going_silent_ends_the_goal_with_a_reason(agent: Agent, driver: Proc) -> None:
    handle, _ = _run_until_feedback(agent, 400, 3)
    driver.proc.send_signal(signal.SIGSTOP)  # the driver stops publishing and listening
    try:
        answer = agent.result(handle, timeout_s=60)
    finally:
        driver.proc.send_signal(signal.SIGCONT)
    assert answer.status == GoalStatus.STATUS_ABORTED
    assert "joint states on /joint_states are" in answer.result.reason, answer.result.reason
    # no command reaches the arm after the fault: the driver's own watchdog holds it
    status = driver_status(agent.ros)
    time.sleep(0.5)
    later = driver_status(agent.ros)
    assert later["stale"] is True and later["commands"] == status["commands"]
    assert np.allclose(later["position"], later["target"])


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("fps:=fast", "parameter fps: expected float, got 'fast'"),
        ("speed:=3.0", "unknown parameters: speed"),
        ("command_kind:=velocity", "command_kind"),
        ("hardware_limits.home:=[9.0, 0.0, 0.0, 0.0]", "outside the joint position limits"),
    ],
)
def test_bad_parameters_fail_configure_and_the_node_stays_unconfigured(
    domain: int, ros: Ros, tmp_path: Path, param: str, message: str
) -> None:
    proc = start_node(domain, tmp_path / "store", "-p", param)
    agent = Agent(ros, proc)
    assert not agent.transition("configure")
    assert agent.state() == "unconfigured"
    assert proc.stop() == 0
    assert message in proc.output(), proc.output()[-2000:]
    assert "Traceback" not in proc.output()


def test_forward_position_controller_commands(domain: int, ros: Ros, tmp_path: Path) -> None:
    """command_kind array: std_msgs/Float64MultiArray on the forward controller's ~/commands, in joint order."""
    driver = start_driver(domain, "--command-kind", "array")
    proc = start_node(domain, tmp_path / "store", "-p", "command_kind:=array", activate=True)
    try:
        commands: list[Float64MultiArray] = []
        ros.node.create_subscription(Float64MultiArray, "/forward_position_controller/commands", commands.append, 100)
        before = driver_status(ros)["commands"]
        agent = Agent(ros, proc)
        answer = agent.result(agent.send_goal(10))
        assert answer.status == GoalStatus.STATUS_SUCCEEDED and answer.result.steps == 10
        ros.spin_for(0.5)
        assert len(commands) >= 10 and all(len(c.data) == 4 for c in commands)
        assert driver_status(ros)["commands"] >= before + 10  # the driver executed them
    finally:
        assert proc.stop() == 0, proc.output()[-3000:]
        driver.stop()


def test_flywheel_ros_agent_runs_the_node_active_and_homes_on_sigterm(
    domain: int, ros: Ros, driver: Proc, tmp_path: Path
) -> None:
    """From the project's own venv (no rclpy there): ``flywheel ros agent`` finds .venv-ros and runs the node."""
    params = ROOT / "ros_ws" / "src" / "vla_flywheel_ros" / "config" / "agent.yaml"
    argv = [main_python(), "-m", "flywheel.cli", "ros", "agent", "--params-file", str(params)]
    argv += ["-p", f"store:={tmp_path / 'store'}", "-p", "state_timeout_s:=2.0", "--domain-id", str(domain)]
    proc = Proc(argv, loopback_env(domain), ready='"active"')
    agent = Agent(ros, proc)
    _run_until_feedback(agent, 400, 3)
    assert proc.stop(signal.SIGTERM) == 0, proc.output()[-3000:]  # mid-goal: cancel, go home, shut down
    status = driver_status(ros)
    assert np.allclose(status["position"], HOME, atol=0.05), status
    info = EpisodeStore(tmp_path / "store", create=False).episodes()
    assert [i.status for i in info] == ["aborted"]
    assert "Traceback" not in proc.output()


def test_flywheel_ros_agent_with_no_driver_is_one_line(domain: int, tmp_path: Path) -> None:
    argv = [main_python(), "-m", "flywheel.cli", "ros", "agent", "-p", f"store:={tmp_path / 's'}"]
    argv += ["-p", "connect_timeout_s:=1.0", "--domain-id", str(domain)]
    result = subprocess.run(argv, cwd=ROOT, env=loopback_env(domain), capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: activate failed: no messages on /joint_states within 1 s (ROS domain {domain}): "
        "is the arm driver running on this domain?"
    ], result.stderr
    assert "Traceback" not in result.stderr
