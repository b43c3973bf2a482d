"""A ROS 2 arm over DDS, without rclpy: ``make_robot("dds", ...)``.

Talks to any ros2_control arm (and a RealSense driver) whose topics match ``ros_mapping.ArmTopics``,
on the ROS 2 domain ``domain_id``, through ``transports.dds`` (ROS 2 Jazzy types and topic names, so
the other side may be ``robot_agent.transports.fake_driver`` or a real ROS 2 stack on
rmw_cyclonedds_cpp; see docs/hardware.md).

Spaces (shapes at the boundary):

- state float32 ``[N]``: measured joint positions from ``/joint_states``, in ``joint_names`` order;
- action float32 ``[N]``: absolute joint position targets, published as a one-point JointTrajectory
  (reached after one control period) or a Float64MultiArray, after ``HardwareSafety.filter``;
- images ``{camera: uint8 [H, W, 3]}`` and, with ``depth``, ``{camera: uint16 [H, W]}`` millimetres.

``send_action`` keeps the control rate (``fps``) itself: it returns at the next tick, like a
simulator's step, so the same loop drives sim and hardware.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from data_store.schema import Observation, RobotSpec, SchemaError
from robot_agent import ros_mapping
from robot_agent.hardware_safety import PRESETS as LIMIT_PRESETS
from robot_agent.hardware_safety import HardwareLimits, HardwareSafety, Verdict, load_limits
from robot_agent.robots.base import Robot, register_robot
from robot_agent.ros_mapping import ArmTopics, CommandKind
from robot_agent.transports import dds
from robot_agent.transports.kinematic_arm import PlanarArm, tool_position


class RobotFault(RuntimeError):
    """The arm stopped answering (stale joint states) or refused to move (e-stop, home timeout)."""


@dataclass(frozen=True)
class DDSRobotConfig:
    domain_id: int | None = None  # None: ROS_DOMAIN_ID (0 when unset)
    joint_names: tuple[str, ...] = PlanarArm().joint_names
    command_kind: CommandKind = "trajectory"
    topics: ArmTopics = field(default_factory=ArmTopics)
    camera: str = "side"  # the name the color camera has in observations and episodes
    image_size: tuple[int, int] = (64, 64)  # (H, W) the camera publishes
    depth: bool = True
    fps: float = 10.0  # control rate
    limits: str = "fake-arm"  # a hardware_safety preset name, or a YAML file path
    kinematics: PlanarArm | None = field(default_factory=PlanarArm)  # forward kinematics for the workspace box
    connect_timeout_s: float = 15.0
    state_timeout_s: float = 1.0  # joint states older than this: the driver is gone -> RobotFault
    home_timeout_s: float = 20.0


PRESETS: dict[str, DDSRobotConfig] = {
    "fake-arm": DDSRobotConfig(),  # robot_agent.transports.fake_driver
    "fake-arm-array": DDSRobotConfig(command_kind="array"),
}


def _limits(spec: str) -> HardwareLimits:
    return LIMIT_PRESETS[spec]() if spec in LIMIT_PRESETS else load_limits(spec)


@register_robot("dds")
class DDSRobot(Robot):
    def __init__(
        self, preset: str = "fake-arm", *, instruction: str = "", config: DDSRobotConfig | None = None, **overrides: Any
    ) -> None:
        if config is None:
            if preset not in PRESETS:
                raise ValueError(f"unknown DDS robot preset {preset!r}; known: {', '.join(sorted(PRESETS))}")
            config = PRESETS[preset]
        self.config = replace(config, **overrides) if overrides else config
        self.instruction = instruction
        limits = _limits(self.config.limits)
        if tuple(limits.joint_names) != tuple(self.config.joint_names):
            raise ValueError(f"limits are for joints {limits.joint_names}, robot has {self.config.joint_names}")
        arm = self.config.kinematics
        fk = (lambda q: tool_position(arm, q)) if arm is not None else None
        self.safety = HardwareSafety(limits, fk=fk if limits.workspace is not None else None)
        self.last_verdict: Verdict | None = None
        self._domain: dds.RosDomain | None = None
        self._next_tick = 0.0

    @property
    def spec(self) -> RobotSpec:
        c, lim = self.config, self.safety.limits
        return RobotSpec(
            action_dim=len(c.joint_names),
            state_dim=len(c.joint_names),
            action_low=tuple(lim.position_min),
            action_high=tuple(lim.position_max),
            cameras={c.camera: c.image_size},
            depth_cameras={c.camera: c.image_size} if c.depth else {},
            fps=c.fps,
            action_names=tuple(f"{j}.target" for j in c.joint_names),
            state_names=tuple(f"{j}.position" for j in c.joint_names),
        )

    # ---- connection ------------------------------------------------------------------------------
    def connect(self) -> None:
        if self._domain is not None:
            return
        c, msgs = self.config, dds.messages()
        self._domain = domain = dds.RosDomain(c.domain_id)
        self._joints = domain.subscription(c.topics.joint_states, msgs.JointState)
        self._color = domain.subscription(c.topics.color, msgs.Image, dds.SENSOR_DATA)
        self._depth = domain.subscription(c.topics.depth, msgs.Image, dds.SENSOR_DATA) if c.depth else None
        self._status = domain.subscription(c.topics.driver_status, msgs.String, dds.LATCHED)
        command_type = msgs.JointTrajectory if c.command_kind == "trajectory" else msgs.Float64MultiArray
        self._command = domain.publisher(c.topics.command(c.command_kind), command_type)
        self._estop = domain.publisher(c.topics.estop, msgs.Bool)
        for sub, topic in self._streams():
            try:
                sub.wait(c.connect_timeout_s)
            except TimeoutError:
                self.disconnect()
                raise RobotFault(
                    f"no messages on {topic} (ROS domain {domain.domain_id}) within {c.connect_timeout_s:.0f} s: "
                    "is the arm driver running on this domain?"
                ) from None
        self._next_tick = time.monotonic()

    def _streams(self) -> list[tuple[dds.Subscription, str]]:
        c = self.config
        out = [(self._joints, c.topics.joint_states), (self._color, c.topics.color)]
        if self._depth is not None:
            out.append((self._depth, c.topics.depth))
        return out

    def disconnect(self) -> None:
        """Go home (when the limits say so and no e-stop is latched), then release the domain. Idempotent."""
        if self._domain is None:
            return
        try:
            if self.safety.limits.home_on_shutdown and not self.safety.estopped:
                self._go_home()
        except RobotFault:
            pass  # the driver is gone or refused: its own watchdog holds the arm
        finally:
            domain, self._domain = self._domain, None
            domain.close()

    # ---- observing -------------------------------------------------------------------------------
    def joint_positions(self) -> np.ndarray:
        """The newest measured joint positions, float32 [N]; RobotFault when they are stale."""
        self._joints.poll()
        age = time.monotonic() - self._joints.received_at
        if self._joints.latest is None or age > self.config.state_timeout_s:
            raise RobotFault(f"joint states on {self.config.topics.joint_states} are {age:.2f} s old")
        return ros_mapping.joint_state_to_state(self._joints.latest, self.config.joint_names)

    def observe(self) -> Observation:
        c = self.config
        state = self.joint_positions()
        for sub, _ in self._streams()[1:]:
            sub.poll()
        rgb = ros_mapping.image_to_rgb(self._color.latest)
        if rgb.shape[:2] != c.image_size:
            raise SchemaError(f"{c.topics.color}: expected {list(c.image_size)} images, got {list(rgb.shape[:2])}")
        depth = None
        if self._depth is not None:
            depth = {c.camera: ros_mapping.image_to_depth(self._depth.latest)}
        stamp = ros_mapping.stamp_to_seconds(self._joints.latest.header.stamp)
        return Observation(
            images={c.camera: rgb}, state=state, instruction=self.instruction, timestamp=stamp, depth=depth
        )

    def driver_status(self) -> dict[str, Any]:
        """The driver's newest ``/driver_status`` JSON ({} when it publishes none)."""
        self._status.poll()
        return json.loads(self._status.latest.data) if self._status.latest is not None else {}

    # ---- acting ----------------------------------------------------------------------------------
    def send_action(self, action: np.ndarray) -> None:
        """Filter the joint targets through the hardware limits, publish, and wait for the next tick."""
        self.last_verdict = self.safety.filter(self.joint_positions(), action, 1.0 / self.config.fps)
        self._publish(self.last_verdict.command)
        self._pace()

    def hold(self) -> None:
        """Command the measured position (keeps the driver's watchdog fed without moving)."""
        self._publish(self.joint_positions())
        self._pace()

    def _publish(self, command: np.ndarray) -> None:
        c = self.config
        if c.command_kind == "trajectory":
            fields = ros_mapping.action_to_trajectory_fields(command, c.joint_names, time_from_start=1.0 / c.fps)
        else:
            fields = ros_mapping.action_to_array_fields(command, c.joint_names)
        self._command.publish(fields)

    def _pace(self) -> None:
        self._next_tick += 1.0 / self.config.fps
        now = time.monotonic()
        if self._next_tick < now:  # late: start a fresh schedule rather than rush
            self._next_tick = now
        time.sleep(self._next_tick - now)

    # ---- safety ----------------------------------------------------------------------------------
    def estop(self, reason: str = "operator") -> None:
        """Latch the e-stop here and in the driver."""
        self.safety.estop(reason)
        self._estop.publish({"data": True})

    def reset_estop(self) -> None:
        self.safety.reset()
        self._estop.publish({"data": False})

    def home(self, seed: int | None = None) -> Observation:
        """Drive to the home pose at the velocity limits and return the first observation there."""
        if self.safety.estopped:
            raise RobotFault(f"e-stop is latched ({self.safety.estop_reason}): reset it before homing")
        self._go_home()
        return self.observe()

    def _go_home(self) -> None:
        dt = 1.0 / self.config.fps
        for waypoint in self.safety.path_home(self.joint_positions(), dt):
            self._publish(waypoint)
            self._pace()
        deadline = time.monotonic() + self.config.home_timeout_s
        home = np.array(self.safety.limits.home, dtype=np.float32)
        while not self.safety.at_home(self.joint_positions()):
            if time.monotonic() > deadline:
                raise RobotFault(f"did not reach home within {self.config.home_timeout_s:.0f} s")
            self._publish(home)
            self._pace()
