"""The ROS 2 contract end to end: a fake arm-driver process on DDS, the agent's control loop driving it
through ``DDSRobot``, episodes recorded into a real store, and what was recorded checked against what
the driver did."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_store.episodes import EpisodeStore
from robot_agent.loop import run_episode
from robot_agent.robots.base import make_robot
from robot_agent.slot import PolicySlot
from robot_agent.transports.kinematic_arm import PlanarArm, ReachPolicy, joint_points, tool_position
from tests.robot_agent.hardware.conftest import LENIENT, DriverProcess, start_driver

ARM = PlanarArm()


def test_episodes_against_the_fake_driver_are_recorded(tmp_path: Path) -> None:
    """JointTrajectory commands here; test_fake_driver covers Float64MultiArray."""
    driver: DriverProcess = start_driver()
    try:
        store = EpisodeStore(tmp_path / "store")
        robot = make_robot("dds", domain_id=driver.domain_id, instruction="touch the red block", **LENIENT)
        slot = PolicySlot(ReachPolicy(), version="reach-v1")
        results = []
        with robot:
            for seed in range(2):
                writer = store.create(
                    robot.spec,
                    task="touch-block",
                    instruction="touch the red block",
                    robot_id="fake-arm-0",
                    policy_version=slot.version,
                )
                results.append(run_episode(robot, slot, max_steps=40, seed=seed, writer=writer))
            status = robot.driver_status()
            steps = sum(r.steps for r in results)
            # The policy stays inside the hardware envelope: what was recorded went on the wire unchanged.
            assert robot.safety.counts == {"estop": 0, "position": 0, "velocity": 0, "workspace": 0}
    finally:
        driver.stop()

    for result in results:
        # The driver reports the touch; the loop stops on it, well before max_steps.
        assert (result.success, result.reason, result.status) == (True, "success", "complete")
        assert 3 <= result.steps < 40
        assert result.versions == ("reach-v1",)

    infos = store.episodes(task="touch-block")
    assert sorted(i.episode_id for i in infos) == sorted(r.episode_id for r in results)
    for result in results:
        r = store.open(result.episode_id)
        assert (r.info.status, r.info.success, r.info.robot_id) == ("complete", "true", "fake-arm-0")
        T = len(r)
        assert result.steps == T
        images, depth = r.images("side"), r.depth("side")
        states, actions, stamps = r.states(), r.actions(), r.timestamps()
        assert images.shape == (T, 64, 64, 3) and images.dtype == np.uint8
        assert depth.shape == (T, 64, 64) and depth.dtype == np.uint16
        assert states.shape == actions.shape == (T, 4)

        # Each episode starts at home (the loop homes the arm) and its states are the driver's joints.
        np.testing.assert_allclose(states[0], ARM.home, atol=0.03)
        # The timestamps are the driver's joint-state stamps (wall clock): never backwards, spanning the
        # episode. (A starved driver may publish nothing new between two ticks on a loaded machine.)
        gaps = np.diff(stamps)
        assert np.all(gaps >= 0) and stamps[-1] - stamps[0] > 0.05 * (T - 1)
        # The arm follows the commands: the state at t+1 moved toward the action sent at t.
        moved = np.linalg.norm(states[1:] - states[:-1], axis=1)
        assert np.mean(moved > 1e-3) > 0.5
        lag = np.abs(states[1:] - actions[:-1]).max(axis=1)
        assert float(np.median(lag)) < 0.15
        # The pictures are renders of those joints: the camera saw the arm move, and the depth sees it too.
        assert np.mean(images[0] != images[-1]) > 0.01
        assert (depth[-1] < depth[0]).any() or (depth[-1] > depth[0]).any()
        # The tool ended on the block (forward kinematics of the last recorded state).
        tip = joint_points(ARM, states[-1].astype(np.float64))[-1]
        assert abs(tip[0] - ARM.block[0]) < 0.05 and tool_position(ARM, states[-1])[2] < 0.15

    # The driver received every command (homing adds its own).
    assert status["commands"] >= steps and status["rejected"] == 0


def test_the_store_holds_what_went_on_the_wire(tmp_path: Path) -> None:
    """A random policy asks for jumps the hardware envelope cuts; the recorded actions are the cut ones:
    inside the joint limits and within one tick of motion of the action before."""
    from robot_agent.policies import RandomPolicy

    driver = start_driver()
    try:
        store = EpisodeStore(tmp_path / "store")
        robot = make_robot("dds", domain_id=driver.domain_id, **LENIENT)
        with robot:
            writer = store.create(robot.spec, task="random", instruction="move", robot_id="fake-arm-0")
            result = run_episode(robot, PolicySlot(RandomPolicy(seed=3), "random"), max_steps=12, writer=writer)
            counts = dict(robot.safety.counts)
    finally:
        driver.stop()
    assert result.steps == 12 and counts["velocity"] > 0  # the policy did ask for too much
    actions = store.open(result.episode_id).actions()
    limits = robot.safety.limits
    assert np.all(actions >= np.array(limits.position_min) - 1e-6)
    assert np.all(actions <= np.array(limits.position_max) + 1e-6)
    step = np.array(limits.max_velocity) / robot.spec.fps
    assert np.all(np.abs(np.diff(actions, axis=0)) <= step + 1e-5)


def test_no_driver_answering_is_one_line_that_names_what_it_waited_for(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from tests.robot_agent.hardware.conftest import _DOMAINS

    domain = next(_DOMAINS)  # nothing answers there
    cmd = [sys.executable, "-m", "flywheel.cli", "robot", "run", "--robot", "dds", "--policy", "random",
           "--connect-timeout", "1", "--episodes", "1", "--store", str(tmp_path / "store")]  # fmt: skip
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "COLUMNS": "400"}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 1, out
    assert "Traceback" not in out.stderr + out.stdout
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no messages on /joint_states within 1 s" in lines[0], out.stderr
    assert f"domain {domain}" in lines[0] and "driver" in lines[0]
