"""A fake arm driver on DDS: the ROS 2 contract of a real arm, without the arm.

Run it as a process::

    python -m robot_agent.transports.fake_driver --domain-id 42 --command-kind trajectory

It speaks the topics of ``ros_mapping.ArmTopics`` with ROS 2 Jazzy types (so a ROS 2 node on
rmw_cyclonedds_cpp sees an ordinary ros2_control arm with a RealSense):

- publishes ``/joint_states`` (sensor_msgs/JointState) every driver tick, color and aligned depth
  ``sensor_msgs/Image`` at the camera rate, and ``/driver_status`` (std_msgs/String, JSON);
- executes ``/arm_controller/joint_trajectory`` (trajectory_msgs/JointTrajectory, last point) or
  ``/forward_position_controller/commands`` (std_msgs/Float64MultiArray) as joint position targets,
  clamped to the joint limits and reached at most at the joint velocity limits;
- holds (target := current position) when no command came for ``command_timeout_s``: the driver-side
  watchdog of a real controller;
- latches an e-stop on ``/estop`` (std_msgs/Bool true): holds and ignores commands until a Bool false
  releases it;
- reports ``"success"`` in its status while the tool touches the top of the block (the fake task).

The arm is ``kinematic_arm.PlanarArm``: pure kinematics, rendered by numpy.
"""

from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import typer

from robot_agent import ros_mapping
from robot_agent.ros_mapping import ArmTopics, CommandKind
from robot_agent.transports import dds
from robot_agent.transports.kinematic_arm import PlanarArm, render, step_toward, touching_block


@dataclass(frozen=True)
class DriverConfig:
    domain_id: int = 0
    command_kind: CommandKind = "trajectory"
    rate_hz: float = 50.0  # driver tick (joint states are published every tick)
    camera_fps: float = 10.0
    image_size: tuple[int, int] = (64, 64)  # (H, W)
    depth: bool = True
    command_timeout_s: float = 0.25  # hold when the newest command is older than this
    start: Literal["home", "zero"] = "home"
    arm: PlanarArm = field(default_factory=PlanarArm)
    topics: ArmTopics = field(default_factory=ArmTopics)


class FakeDriver:
    """The driver's state machine; ``tick`` is one control period. Runs in ``serve`` or step by step."""

    def __init__(self, config: DriverConfig) -> None:
        self.config = config
        arm = config.arm
        self.q = np.array(arm.home if config.start == "home" else np.zeros(arm.dof), dtype=np.float64)
        self.target = self.q.copy()
        self.velocity = np.zeros(arm.dof)
        self.estop = False
        self.stale = True  # no command yet: holding
        self.last_command = -np.inf
        self.commands = 0
        self.rejected = 0
        self.now = 0.0
        self._next_frame = 0.0
        self.frames = 0

        msgs = dds.messages()
        self._msgs = msgs
        self.domain = dds.RosDomain(config.domain_id)
        t = config.topics
        self.pub_joints = self.domain.publisher(t.joint_states, msgs.JointState)
        self.pub_color = self.domain.publisher(t.color, msgs.Image, dds.SENSOR_DATA)
        self.pub_depth = self.domain.publisher(t.depth, msgs.Image, dds.SENSOR_DATA) if config.depth else None
        self.pub_status = self.domain.publisher(t.driver_status, msgs.String, dds.LATCHED)
        command_type = msgs.JointTrajectory if config.command_kind == "trajectory" else msgs.Float64MultiArray
        self.sub_command = self.domain.subscription(t.command(config.command_kind), command_type)
        self.sub_estop = self.domain.subscription(t.estop, msgs.Bool, dds.DEFAULT)

    def tick(self, now: float, dt: float) -> None:
        """Read e-stop and commands, run the watchdog, move, publish."""
        self.now = now
        arm = self.config.arm
        for msg in self.sub_estop.poll():
            self.estop = bool(msg.data)  # latched: only an explicit false releases it
        for msg in self.sub_command.poll():
            if self.estop:
                self.rejected += 1
                continue
            try:
                if self.config.command_kind == "trajectory":
                    cmd = ros_mapping.trajectory_to_command(msg, arm.joint_names)
                else:
                    cmd = ros_mapping.array_to_command(msg, arm.joint_names)
            except ValueError:
                self.rejected += 1
                continue
            self.target = arm.clamp(cmd.astype(np.float64))
            self.last_command = now
            self.commands += 1
        self.stale = now - self.last_command > self.config.command_timeout_s
        if self.stale or self.estop:
            self.target = self.q.copy()  # hold where we are
        q_next = step_toward(self.q, self.target, np.array(arm.max_velocity), dt)
        self.velocity = (q_next - self.q) / dt
        self.q = arm.clamp(q_next)
        self.publish(now)

    def status(self) -> dict[str, object]:
        return {
            "success": touching_block(self.config.arm, self.q),
            "estop": self.estop,
            "stale": self.stale,
            "commands": self.commands,
            "rejected": self.rejected,
            "frames": self.frames,
            "position": [float(x) for x in self.q],
            "target": [float(x) for x in self.target],
        }

    def publish(self, now: float) -> None:
        arm = self.config.arm
        self.pub_joints.publish(ros_mapping.joint_state_fields(arm.joint_names, self.q, self.velocity, now))
        if now >= self._next_frame:
            self._next_frame = now + 1.0 / self.config.camera_fps
            rgb, depth = render(arm, self.q, self.config.image_size)
            self.pub_color.publish(ros_mapping.rgb_to_image_fields(rgb, now))
            if self.pub_depth is not None:
                self.pub_depth.publish(ros_mapping.depth_to_image_fields(depth, now))
            self.frames += 1
            self.pub_status.publish({"data": json.dumps(self.status())})

    def serve(self, duration_s: float | None = None, ready: str | None = None) -> None:
        """Tick in real time until SIGINT/SIGTERM (or ``duration_s``); print ``ready`` once signals are handled."""
        stop = False

        def _stop(*_: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        if ready is not None:
            print(ready, flush=True)
        period = 1.0 / self.config.rate_hz
        start = time.monotonic()
        next_tick = start
        while not stop and (duration_s is None or time.monotonic() - start < duration_s):
            now = time.monotonic()
            self.tick(time.time(), period)
            next_tick += period
            if next_tick < now:  # fell behind (a loaded machine): do not burst to catch up
                next_tick = now + period
            time.sleep(max(0.0, next_tick - time.monotonic()))
        self.close()

    def close(self) -> None:
        self.domain.close()


def main(
    domain_id: int = typer.Option(0, help="ROS 2 domain (ROS_DOMAIN_ID)."),
    command_kind: str = typer.Option("trajectory", help="trajectory (JointTrajectory) or array (Float64MultiArray)."),
    rate_hz: float = typer.Option(50.0, help="Driver tick rate; joint states are published every tick."),
    camera_fps: float = typer.Option(10.0, help="Color/depth publishing rate."),
    image_size: int = typer.Option(64, help="Square image side in pixels."),
    depth: bool = typer.Option(True, help="Publish aligned depth (16UC1, mm)."),
    command_timeout: float = typer.Option(0.25, help="Hold when no command came for this many seconds."),
    duration: float = typer.Option(0.0, help="Stop after this many seconds (0: run until SIGTERM)."),
) -> None:
    """Fake ros2_control arm with a side camera, on ROS 2 topics over DDS."""
    if command_kind not in ros_mapping.COMMAND_KINDS:
        raise typer.BadParameter(f"must be one of {ros_mapping.COMMAND_KINDS}", param_hint="--command-kind")
    config = DriverConfig(
        domain_id=domain_id,
        command_kind=command_kind,  # type: ignore[arg-type]
        rate_hz=rate_hz,
        camera_fps=camera_fps,
        image_size=(image_size, image_size),
        depth=depth,
        command_timeout_s=command_timeout,
    )
    driver = FakeDriver(config)
    driver.serve(duration or None, ready=json.dumps({"fake_driver": "ready", "domain_id": domain_id}))


if __name__ == "__main__":
    typer.run(main)
