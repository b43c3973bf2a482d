"""The node's parameters: names, types and defaults, parsed and checked without rclpy.

ROS 2 parameters are flat, typed values; nested YAML maps become dotted names
(``hardware_limits.position_min``). ``DEFAULTS`` is what the node declares (the default's type is the
parameter's type); ``from_parameters`` turns the values the node holds into ``AgentParams``, and
``from_ros_yaml`` reads the same from a ``ros2 run ... --params-file`` YAML (``/**: ros__parameters:``),
so the configuration is tested here, on a machine without ROS 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robot_agent.hardware_safety import HardwareLimits
from robot_agent.robots.dds import TopicArmConfig
from robot_agent.ros_mapping import COMMAND_KINDS, ArmTopics

NODE_NAME = "vla_flywheel_agent"

DEFAULTS: dict[str, Any] = {
    "robot_id": "ros-arm-0",
    "task": "ros-task",
    "policy": "random",  # a robot_agent.policies.load_policy spec: "random", "replay:<episode>", "artifact:<dir>", ...
    "store": "flywheel_data/episodes",
    "fps": 10.0,
    "default_max_steps": 200,
    "joint_names": ["shoulder", "elbow", "wrist", "gripper"],
    "command_kind": "trajectory",  # trajectory -> JointTrajectoryController; array -> forward command controller
    "topics.joint_states": ArmTopics.joint_states,
    "topics.trajectory_command": ArmTopics.trajectory_command,
    "topics.array_command": ArmTopics.array_command,
    "topics.color": ArmTopics.color,
    "topics.depth": ArmTopics.depth,
    "topics.estop": ArmTopics.estop,
    "camera.name": "side",
    "camera.source": "topic",  # topic: sensor_msgs/Image topics; realsense: read the camera directly
    "camera.height": 64,
    "camera.width": 64,
    "camera.depth": True,
    "camera.realsense_serial": "",
    "camera.fps": 30,
    "state_timeout_s": 1.0,
    "connect_timeout_s": 15.0,
    "hardware_limits.joint_names": ["shoulder", "elbow", "wrist", "gripper"],
    "hardware_limits.position_min": [-1.6, -2.4, -2.0, 0.0],
    "hardware_limits.position_max": [1.6, 2.4, 2.0, 1.0],
    "hardware_limits.max_velocity": [1.2, 1.2, 1.6, 1.6],
    "hardware_limits.home": [0.3, 1.1, 0.9, 1.0],
    "hardware_limits.command_timeout_s": 0.25,
    "hardware_limits.home_on_shutdown": True,
}


class ParamError(ValueError):
    """A parameter has the wrong type or value; the message names it."""


@dataclass(frozen=True)
class AgentParams:
    robot_id: str
    task: str
    policy: str
    store: str
    default_max_steps: int
    camera_source: str
    realsense_serial: str
    camera_fps: int
    arm: TopicArmConfig
    limits: HardwareLimits


def _typed(name: str, value: Any) -> Any:
    default = DEFAULTS[name]
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, list):
        elem = type(default[0])
        ok = isinstance(value, list | tuple) and all(
            isinstance(v, elem) or (elem is float and isinstance(v, int) and not isinstance(v, bool)) for v in value
        )
        value = [elem(v) for v in value] if ok else value
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ParamError(f"parameter {name}: expected {type(default).__name__}, got {value!r}")
    return value


def from_parameters(values: dict[str, Any]) -> AgentParams:
    """``AgentParams`` from parameter values (missing names take their defaults; unknown names are errors)."""
    unknown = sorted(set(values) - set(DEFAULTS))
    if unknown:
        raise ParamError(f"unknown parameters: {', '.join(unknown)}")
    p = {name: _typed(name, values.get(name, default)) for name, default in DEFAULTS.items()}
    if p["command_kind"] not in COMMAND_KINDS:
        raise ParamError(f"parameter command_kind: expected one of {COMMAND_KINDS}, got {p['command_kind']!r}")
    if p["camera.source"] not in ("topic", "realsense"):
        raise ParamError(f"parameter camera.source: expected 'topic' or 'realsense', got {p['camera.source']!r}")
    if p["fps"] <= 0 or p["default_max_steps"] <= 0:
        raise ParamError("parameters fps and default_max_steps must be positive")
    try:
        limits = HardwareLimits.model_validate(
            {
                "joint_names": p["hardware_limits.joint_names"],
                "position_min": p["hardware_limits.position_min"],
                "position_max": p["hardware_limits.position_max"],
                "max_velocity": p["hardware_limits.max_velocity"],
                "home": p["hardware_limits.home"],
                "command_timeout_s": p["hardware_limits.command_timeout_s"],
                "home_on_shutdown": p["hardware_limits.home_on_shutdown"],
            }
        )
    except ValueError as e:
        raise ParamError(f"hardware_limits: {e}") from None
    if list(limits.joint_names) != p["joint_names"]:
        raise ParamError(f"hardware_limits.joint_names {list(limits.joint_names)} != joint_names {p['joint_names']}")
    topics = ArmTopics(
        joint_states=p["topics.joint_states"],
        trajectory_command=p["topics.trajectory_command"],
        array_command=p["topics.array_command"],
        color=p["topics.color"],
        depth=p["topics.depth"],
        estop=p["topics.estop"],
    )
    arm = TopicArmConfig(
        joint_names=tuple(p["joint_names"]),
        command_kind=p["command_kind"],
        topics=topics,
        camera=p["camera.name"],
        image_size=(p["camera.height"], p["camera.width"]),
        depth=p["camera.depth"],
        fps=p["fps"],
        kinematics=None,  # no workspace box here: it needs the arm's kinematics (docs/hardware.md)
        connect_timeout_s=p["connect_timeout_s"],
        state_timeout_s=p["state_timeout_s"],
    )
    return AgentParams(
        robot_id=p["robot_id"],
        task=p["task"],
        policy=p["policy"],
        store=p["store"],
        default_max_steps=p["default_max_steps"],
        camera_source=p["camera.source"],
        realsense_serial=p["camera.realsense_serial"],
        camera_fps=p["camera.fps"],
        arm=arm,
        limits=limits,
    )


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested YAML maps → dotted parameter names (as ROS 2 does)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def from_ros_yaml(path: str | Path, node_name: str = NODE_NAME) -> AgentParams:
    """Parameters from a ROS 2 params file: the ``/**`` section, then the node's own (which wins)."""
    import yaml

    doc = yaml.safe_load(Path(path).read_text()) or {}
    values: dict[str, Any] = {}
    for section in ("/**", node_name, f"/{node_name}"):
        params = (doc.get(section) or {}).get("ros__parameters")
        if params:
            values.update(flatten(params))
    return from_parameters(values)
