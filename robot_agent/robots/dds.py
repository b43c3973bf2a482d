"""A ROS 2 arm seen through its topics: ``TopicArm`` (any transport) and ``DDSRobot`` (DDS, no rclpy).

``make_robot("dds", domain_id=42)`` talks to any ros2_control arm (and a RealSense driver) whose
topics match ``ros_mapping.ArmTopics``, on ROS 2 domain ``domain_id``, through ``transports.dds``
(ROS 2 Jazzy types and names: the other side may be ``robot_agent.transports.fake_driver`` or a real
ROS 2 stack on rmw_cyclonedds_cpp; see docs/hardware.md). The rclpy node in
``ros_ws/src/vla_flywheel_ros`` subclasses ``TopicArm`` with rclpy subscriptions: the behaviour
(mapping, safety, pacing, homing, e-stop) is this module's in both.

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
import os
import time
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from data_store.schema import Observation, RobotSpec, SchemaError
from robot_agent import ros_mapping
from robot_agent.hardware_safety import PRESETS as LIMIT_PRESETS
from robot_agent.hardware_safety import HardwareLimits, HardwareSafety, Verdict, load_limits
from robot_agent.robots.base import Robot, RobotFault, register_robot
from robot_agent.ros_mapping import ArmTopics, CommandKind
from robot_agent.transports import dds
from robot_agent.transports.kinematic_arm import PlanarArm, tool_position

Stream = Literal["joints", "color", "depth", "status"]


@dataclass(frozen=True)
class TopicArmConfig:
    domain_id: int | None = None  # DDS only. None: ROS_DOMAIN_ID (0 when unset)
    joint_names: tuple[str, ...] = PlanarArm().joint_names
    command_kind: CommandKind = "trajectory"
    topics: ArmTopics = field(default_factory=ArmTopics)
    camera: str = "side"  # the name the color camera has in observations and episodes
    image_size: tuple[int, int] = (64, 64)  # (H, W) the camera publishes
    depth: bool = True
    fps: float = 10.0  # control rate
    limits: str = "fake-arm"  # a hardware_safety preset name, or a YAML file path
    kinematics: PlanarArm | None = None  # forward kinematics for the workspace box (None: no box allowed)
    connect_timeout_s: float = 15.0
    state_timeout_s: float = 1.0  # joint states older than this: the driver is gone -> RobotFault
    home_timeout_s: float = 20.0


PRESETS: dict[str, TopicArmConfig] = {
    "fake-arm": TopicArmConfig(kinematics=PlanarArm()),  # robot_agent.transports.fake_driver
    "fake-arm-array": TopicArmConfig(command_kind="array", kinematics=PlanarArm()),
}


def resolve_limits(spec: str) -> HardwareLimits:
    """A ``hardware_safety.PRESETS`` name, or a YAML file."""
    return LIMIT_PRESETS[spec]() if spec in LIMIT_PRESETS else load_limits(spec)


CONFIG_ENV = (
    "FLYWHEEL_ARM_CONFIG"  # a YAML file for ``load_arm_config`` (so ``flywheel robot run --robot dds`` can use it)
)


def load_arm_config(path: str | Path) -> TopicArmConfig:
    """A ``TopicArmConfig`` from YAML: its field names (``topics`` a mapping of ``ArmTopics`` fields,
    ``image_size`` a [H, W] pair, ``limits`` a preset name or a limits YAML relative to this file).
    Unknown keys are errors, named."""
    import yaml

    path = Path(path)
    data = yaml.safe_load(path.read_text()) or {}
    known = {f.name for f in fields(TopicArmConfig)} - {"kinematics"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; known: {sorted(known)}")
    topics = data.pop("topics", {}) or {}
    topic_names = {f.name for f in fields(ArmTopics)}
    if set(topics) - topic_names:
        raise ValueError(f"{path}: unknown topics {sorted(set(topics) - topic_names)}; known: {sorted(topic_names)}")
    if "image_size" in data:
        data["image_size"] = tuple(int(x) for x in data["image_size"])
    if "joint_names" in data:
        data["joint_names"] = tuple(str(j) for j in data["joint_names"])
    limits = str(data.get("limits", "fake-arm"))
    if limits not in LIMIT_PRESETS:
        data["limits"] = str((path.parent / limits).resolve())
    if data.get("command_kind", "trajectory") not in ros_mapping.COMMAND_KINDS:
        raise ValueError(f"{path}: command_kind must be one of {ros_mapping.COMMAND_KINDS}")
    return TopicArmConfig(topics=ArmTopics(**topics), **data)


def make_config(preset: str | None = None, config: TopicArmConfig | None = None, **overrides: Any) -> TopicArmConfig:
    """``config``, else the YAML named by $FLYWHEEL_ARM_CONFIG (when no preset is named), else the preset
    (default ``fake-arm``); then ``overrides``."""
    if config is None:
        if preset is None and os.environ.get(CONFIG_ENV):
            config = load_arm_config(os.environ[CONFIG_ENV])
        else:
            preset = preset or "fake-arm"
            if preset not in PRESETS:
                raise ValueError(f"unknown arm preset {preset!r}; known: {', '.join(sorted(PRESETS))}")
            config = PRESETS[preset]
    return replace(config, **overrides) if overrides else config


class TopicArm(Robot):
    """An arm behind ROS 2 topics. Subclasses supply the transport: open/close, the newest message of
    each stream with its arrival time, and publishing a command or the e-stop."""

    needs_pacing = False  # send_action keeps the control rate itself: the loop must not pace it again
    safety_preset = "joint-targets"  # the loop's filter: absolute targets (hold = repeat the last one)

    def __init__(self, config: TopicArmConfig, *, instruction: str = "", limits: HardwareLimits | None = None) -> None:
        """``limits`` overrides ``config.limits`` (e.g. limits read from ROS parameters)."""
        self.config = config
        self.instruction = instruction
        limits = limits or resolve_limits(config.limits)
        if tuple(limits.joint_names) != tuple(config.joint_names):
            raise ValueError(f"limits are for joints {limits.joint_names}, robot has {config.joint_names}")
        arm = config.kinematics
        fk = (lambda q: tool_position(arm, q)) if arm is not None and limits.workspace is not None else None
        self.safety = HardwareSafety(limits, fk=fk)  # a box without kinematics is refused here
        self.last_verdict: Verdict | None = None
        self.steps = 0  # commands sent since connect
        self.on_step: Callable[[int], None] | None = None  # called after each command (ROS action feedback)
        self._open = False
        self._next_tick = 0.0

    # ---- transport (subclasses) ------------------------------------------------------------------
    @abstractmethod
    def _transport_open(self) -> None: ...

    @abstractmethod
    def _transport_close(self) -> None: ...

    @abstractmethod
    def _latest(self, stream: Stream) -> tuple[Any, float]:
        """The newest message of ``stream`` (None if none yet) and its ``time.monotonic()`` arrival."""

    @abstractmethod
    def _publish_command(self, fields: dict[str, Any]) -> None: ...

    @abstractmethod
    def _publish_estop(self, engaged: bool) -> None: ...

    # ---- Robot -----------------------------------------------------------------------------------
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

    def connect(self) -> None:
        if self._open:
            return
        self._transport_open()
        self._open = True
        c = self.config
        streams: list[tuple[Stream, str]] = [("joints", c.topics.joint_states), ("color", c.topics.color)]
        if c.depth:
            streams.append(("depth", c.topics.depth))
        deadline = time.monotonic() + c.connect_timeout_s
        for stream, topic in streams:
            while self._latest(stream)[0] is None:
                if time.monotonic() > deadline:
                    where = self._where()  # before disconnect() closes the domain
                    self.disconnect()
                    raise RobotFault(
                        f"no messages on {topic} within {c.connect_timeout_s:.0f} s{where}: "
                        "is the arm driver running on this domain?"
                    )
                time.sleep(0.005)
        self._next_tick = time.monotonic()

    def _where(self) -> str:
        return ""

    def disconnect(self) -> None:
        """Go home (when the limits say so and no e-stop is latched), then release the transport. Idempotent."""
        if not self._open:
            return
        try:
            if self.safety.limits.home_on_shutdown and not self.safety.estopped:
                self._go_home()
        except RobotFault:
            pass  # the driver is gone or refused: its own watchdog holds the arm
        finally:
            self._open = False
            self._transport_close()

    def joint_positions(self) -> np.ndarray:
        """The newest measured joint positions, float32 [N]; RobotFault when they are stale."""
        msg, at = self._latest("joints")
        age = time.monotonic() - at
        if msg is None or age > self.config.state_timeout_s:
            raise RobotFault(f"joint states on {self.config.topics.joint_states} are {age:.2f} s old")
        return ros_mapping.joint_state_to_state(msg, self.config.joint_names)

    def observe(self) -> Observation:
        c = self.config
        state = self.joint_positions()
        joints, _ = self._latest("joints")
        rgb = ros_mapping.image_to_rgb(self._latest("color")[0])
        if rgb.shape[:2] != c.image_size:
            raise SchemaError(f"{c.topics.color}: expected {list(c.image_size)} images, got {list(rgb.shape[:2])}")
        depth = {c.camera: ros_mapping.image_to_depth(self._latest("depth")[0])} if c.depth else None
        stamp = ros_mapping.stamp_to_seconds(joints.header.stamp)
        return Observation(
            images={c.camera: rgb}, state=state, instruction=self.instruction, timestamp=stamp, depth=depth
        )

    def success(self) -> bool | None:
        """What the driver says (``"success"`` in its status, as the fake driver reports), else None."""
        value = self.driver_status().get("success")
        return None if value is None else bool(value)

    def driver_status(self) -> dict[str, Any]:
        """The driver's newest ``/driver_status`` JSON ({} when it publishes none)."""
        msg, _ = self._latest("status")
        return json.loads(msg.data) if msg is not None else {}

    def send_action(self, action: np.ndarray) -> None:
        """Filter the joint targets through the hardware limits, publish, and wait for the next tick.

        The command sent is written back into ``action`` (when it is a writable float32 ``[N]`` array):
        the loop hands its subscribers that same array, so the recorder stores what went on the wire,
        the store's convention, also when the hardware envelope shortened the policy's target."""
        self.last_verdict = self.safety.filter(self.joint_positions(), action, 1.0 / self.config.fps)
        sent = self.last_verdict.command
        writable = isinstance(action, np.ndarray) and action.dtype == np.float32 and action.flags.writeable
        if writable and action.shape == sent.shape:
            action[:] = sent
        self._command(sent)
        self.steps += 1
        if self.on_step is not None:
            self.on_step(self.steps)
        self._pace()

    def hold(self) -> None:
        """Command the measured position (keeps the driver's watchdog fed without moving)."""
        self._command(self.joint_positions())
        self._pace()

    def _command(self, command: np.ndarray) -> None:
        c = self.config
        if c.command_kind == "trajectory":
            fields = ros_mapping.action_to_trajectory_fields(command, c.joint_names, time_from_start=1.0 / c.fps)
        else:
            fields = ros_mapping.action_to_array_fields(command, c.joint_names)
        self._publish_command(fields)

    def _pace(self) -> None:
        self._next_tick += 1.0 / self.config.fps
        now = time.monotonic()
        if self._next_tick < now:  # late: start a fresh schedule rather than rush
            self._next_tick = now
        time.sleep(self._next_tick - now)

    def estop(self, reason: str = "operator") -> None:
        """Latch the e-stop here and in the driver."""
        self.safety.estop(reason)
        self._publish_estop(True)

    def reset_estop(self) -> None:
        self.safety.reset()
        self._publish_estop(False)

    def home(self, seed: int | None = None) -> Observation:
        """Drive to the home pose at the velocity limits and return the first observation there."""
        if self.safety.estopped:
            raise RobotFault(f"e-stop is latched ({self.safety.estop_reason}): reset it before homing")
        self._go_home()
        return self.observe()

    def _go_home(self) -> None:
        self.safety.forget()  # the next episode's first command is limited around the homed joints
        dt = 1.0 / self.config.fps
        for waypoint in self.safety.path_home(self.joint_positions(), dt):
            self._command(waypoint)
            self._pace()
        deadline = time.monotonic() + self.config.home_timeout_s
        home = np.array(self.safety.limits.home, dtype=np.float32)
        while not self.safety.at_home(self.joint_positions()):
            if time.monotonic() > deadline:
                raise RobotFault(f"did not reach home within {self.config.home_timeout_s:.0f} s")
            self._command(home)
            self._pace()


@register_robot("dds")
class DDSRobot(TopicArm):
    """``TopicArm`` over DDS with ROS 2 naming (``transports.dds``): no ROS 2 install needed."""

    def __init__(
        self,
        preset: str | None = None,
        *,
        instruction: str = "",
        config: TopicArmConfig | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__(make_config(preset, config, **overrides), instruction=instruction)
        self._domain: dds.RosDomain | None = None
        self._subs: dict[Stream, dds.Subscription] = {}

    def _transport_open(self) -> None:
        c, msgs = self.config, dds.messages()
        self._domain = domain = dds.RosDomain(c.domain_id)
        self._subs = {
            "joints": domain.subscription(c.topics.joint_states, msgs.JointState),
            "color": domain.subscription(c.topics.color, msgs.Image, dds.SENSOR_DATA),
            "status": domain.subscription(c.topics.driver_status, msgs.String, dds.LATCHED),
        }
        if c.depth:
            self._subs["depth"] = domain.subscription(c.topics.depth, msgs.Image, dds.SENSOR_DATA)
        command_type = msgs.JointTrajectory if c.command_kind == "trajectory" else msgs.Float64MultiArray
        self._command_pub = domain.publisher(c.topics.command(c.command_kind), command_type)
        self._estop_pub = domain.publisher(c.topics.estop, msgs.Bool)

    def _where(self) -> str:
        return f" (ROS domain {self._domain.domain_id})" if self._domain is not None else ""

    def _transport_close(self) -> None:
        domain, self._domain = self._domain, None
        self._subs = {}
        if domain is not None:
            domain.close()

    @property
    def domain(self) -> dds.RosDomain:
        if self._domain is None:
            raise RuntimeError("not connected")
        return self._domain

    def _latest(self, stream: Stream) -> tuple[Any, float]:
        sub = self._subs[stream]
        sub.poll()
        return sub.latest, sub.received_at

    def _publish_command(self, fields: dict[str, Any]) -> None:
        self._command_pub.publish(fields)

    def _publish_estop(self, engaged: bool) -> None:
        self._estop_pub.publish({"data": engaged})


DDSRobotConfig = TopicArmConfig  # the name the DDS backend's users know
