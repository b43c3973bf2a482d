"""ROS 2 messages ⇄ the agent's observations and actions: the one mapping every ROS transport shares.

The DDS transport (``robot_agent.transports.dds``, message classes from ros2-pyterfaces) and the rclpy
node (``ros_ws/src/vla_flywheel_ros``, message classes from the ROS 2 install) build the same ROS 2
Jazzy messages; both have the same field names, so the functions here read messages by attribute
(duck typing) and return plain field dicts that either side passes to its own message constructor.

Shapes at this boundary:

- ``sensor_msgs/JointState`` → ``state`` float32 ``[S]`` in the order of ``joint_names`` (matched by
  name, so a driver that publishes joints in another order or with extra joints is fine).
- ``sensor_msgs/Image`` (rgb8, bgr8, rgba8, bgra8, mono8) → uint8 ``[H, W, 3]`` RGB, upright;
  (16UC1, mono16) → uint16 ``[H, W]`` depth in millimetres (the RealSense and REP 118 convention);
  32FC1 depth in metres → uint16 millimetres.
- action float32 ``[A]`` = absolute joint position targets (radians, gripper in its own unit), in the
  order of ``joint_names`` → ``trajectory_msgs/JointTrajectory`` with one point (for a
  JointTrajectoryController) or ``std_msgs/Float64MultiArray`` (for a forward command controller).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from data_store.schema import SchemaError

CommandKind = Literal["trajectory", "array"]
COMMAND_KINDS: tuple[CommandKind, ...] = ("trajectory", "array")

_COLOR_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
_DEPTH_ENCODINGS: dict[str, np.dtype] = {"16UC1": np.dtype("<u2"), "mono16": np.dtype("<u2"), "32FC1": np.dtype("<f4")}


# ---- time ------------------------------------------------------------------------------------------


def stamp_to_seconds(stamp: Any) -> float:
    """``builtin_interfaces/Time`` → seconds (float64)."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def seconds_to_stamp(t: float) -> dict[str, int]:
    """Seconds → ``builtin_interfaces/Time`` fields ``{"sec", "nanosec"}`` (nanosec in [0, 1e9))."""
    sec = math.floor(t)
    nanosec = round((t - sec) * 1e9)
    if nanosec >= 1_000_000_000:
        sec, nanosec = sec + 1, nanosec - 1_000_000_000
    return {"sec": int(sec), "nanosec": int(nanosec)}


def duration_fields(seconds: float) -> dict[str, int]:
    """Seconds → ``builtin_interfaces/Duration`` fields (same layout as Time)."""
    return seconds_to_stamp(seconds)


# ---- joint states ----------------------------------------------------------------------------------


def joint_state_to_state(msg: Any, joint_names: Sequence[str]) -> np.ndarray:
    """``sensor_msgs/JointState`` → float32 ``[len(joint_names)]`` positions, matched by joint name.

    Raises ``SchemaError`` naming the joints the message lacks."""
    names = list(msg.name)
    positions = list(msg.position)
    if len(positions) != len(names):
        raise SchemaError(f"JointState.position: {len(positions)} values for {len(names)} names")
    index = {name: i for i, name in enumerate(names)}
    missing = [j for j in joint_names if j not in index]
    if missing:
        raise SchemaError(f"JointState.name: missing joints {missing} (message has {names})")
    return np.array([positions[index[j]] for j in joint_names], dtype=np.float32)


def joint_velocities(msg: Any, joint_names: Sequence[str]) -> np.ndarray | None:
    """Velocities in ``joint_names`` order, or None when the driver does not publish them."""
    velocity = list(msg.velocity)
    if len(velocity) != len(msg.name):
        return None
    index = {name: i for i, name in enumerate(msg.name)}
    return np.array([velocity[index[j]] for j in joint_names], dtype=np.float32)


def joint_state_fields(
    joint_names: Sequence[str], position: np.ndarray, velocity: np.ndarray | None, stamp: float, frame_id: str = ""
) -> dict[str, Any]:
    """Fields of a ``sensor_msgs/JointState`` (header as a nested dict of stamp and frame_id)."""
    return {
        "header": {"stamp": seconds_to_stamp(stamp), "frame_id": frame_id},
        "name": list(joint_names),
        "position": [float(x) for x in position],
        "velocity": [] if velocity is None else [float(x) for x in velocity],
        "effort": [],
    }


# ---- images ----------------------------------------------------------------------------------------


def _pixels(msg: Any, dtype: np.dtype, channels: int) -> np.ndarray:
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    row = w * channels * dtype.itemsize
    if step < row:
        raise SchemaError(f"Image.step: {step} is less than width × pixel size = {row}")
    raw = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    if raw.size < h * step:
        raise SchemaError(f"Image.data: {raw.size} bytes, expected height × step = {h * step}")
    rows = raw[: h * step].reshape(h, step)[:, :row]
    if getattr(msg, "is_bigendian", 0):
        dtype = dtype.newbyteorder(">")
    out = np.ascontiguousarray(rows).view(dtype).reshape(h, w, channels)
    return out.astype(dtype.newbyteorder("="), copy=False)


def image_to_rgb(msg: Any) -> np.ndarray:
    """A color ``sensor_msgs/Image`` → uint8 ``[H, W, 3]`` RGB."""
    enc = str(msg.encoding)
    if enc not in _COLOR_CHANNELS:
        raise SchemaError(f"Image.encoding: {enc!r} is not a color encoding; expected one of {sorted(_COLOR_CHANNELS)}")
    px = _pixels(msg, np.dtype(np.uint8), _COLOR_CHANNELS[enc])
    if enc == "mono8":
        return np.repeat(px, 3, axis=2)
    if enc.startswith("bgr"):
        px = px[:, :, 2::-1]
    return np.array(px[:, :, :3], order="C")  # a copy the observation owns (the message's buffer is read-only)


def image_to_depth(msg: Any) -> np.ndarray:
    """A depth ``sensor_msgs/Image`` → uint16 ``[H, W]`` millimetres (32FC1 metres are converted)."""
    enc = str(msg.encoding)
    if enc not in _DEPTH_ENCODINGS:
        raise SchemaError(
            f"Image.encoding: {enc!r} is not a depth encoding; expected one of {sorted(_DEPTH_ENCODINGS)}"
        )
    px = _pixels(msg, _DEPTH_ENCODINGS[enc], 1)[:, :, 0]
    if enc == "32FC1":
        mm = np.nan_to_num(px.astype(np.float64) * 1000.0, nan=0.0, posinf=0.0, neginf=0.0)
        return np.clip(np.round(mm), 0, 65535).astype(np.uint16)
    return np.array(px, dtype=np.uint16)  # owned and writable


def rgb_to_image_fields(rgb: np.ndarray, stamp: float, frame_id: str = "camera_color_optical_frame") -> dict[str, Any]:
    """uint8 ``[H, W, 3]`` RGB → ``sensor_msgs/Image`` fields (rgb8; ``data`` as bytes)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise SchemaError(f"image: expected uint8 [H, W, 3], got {rgb.dtype} {list(rgb.shape)}")
    h, w, _ = rgb.shape
    return {
        "header": {"stamp": seconds_to_stamp(stamp), "frame_id": frame_id},
        "height": h,
        "width": w,
        "encoding": "rgb8",
        "is_bigendian": 0,
        "step": w * 3,
        "data": np.ascontiguousarray(rgb).tobytes(),
    }


def depth_to_image_fields(
    depth: np.ndarray, stamp: float, frame_id: str = "camera_color_optical_frame"
) -> dict[str, Any]:
    """uint16 ``[H, W]`` millimetres → ``sensor_msgs/Image`` fields (16UC1, little-endian)."""
    if depth.dtype != np.uint16 or depth.ndim != 2:
        raise SchemaError(f"depth: expected uint16 [H, W], got {depth.dtype} {list(depth.shape)}")
    h, w = depth.shape
    return {
        "header": {"stamp": seconds_to_stamp(stamp), "frame_id": frame_id},
        "height": h,
        "width": w,
        "encoding": "16UC1",
        "is_bigendian": 0,
        "step": w * 2,
        "data": np.ascontiguousarray(depth, dtype="<u2").tobytes(),
    }


# ---- commands --------------------------------------------------------------------------------------


def action_to_trajectory_fields(
    action: np.ndarray, joint_names: Sequence[str], time_from_start: float, stamp: float = 0.0
) -> dict[str, Any]:
    """Action float32 ``[A]`` → ``trajectory_msgs/JointTrajectory`` fields with one point reached after
    ``time_from_start`` seconds. A zero header stamp means "start now" to a JointTrajectoryController."""
    _check_command(action, joint_names)
    return {
        "header": {"stamp": seconds_to_stamp(stamp), "frame_id": ""},
        "joint_names": list(joint_names),
        "points": [
            {
                "positions": [float(x) for x in action],
                "velocities": [],
                "accelerations": [],
                "effort": [],
                "time_from_start": duration_fields(time_from_start),
            }
        ],
    }


def action_to_array_fields(action: np.ndarray, joint_names: Sequence[str]) -> dict[str, Any]:
    """Action float32 ``[A]`` → ``std_msgs/Float64MultiArray`` fields (the layout a forward command
    controller expects: one dimension labelled by nothing, values in the controller's joint order)."""
    _check_command(action, joint_names)
    return {"layout": {"dim": [], "data_offset": 0}, "data": [float(x) for x in action]}


def trajectory_to_command(msg: Any, joint_names: Sequence[str]) -> np.ndarray:
    """The last point of a ``JointTrajectory`` → float32 ``[len(joint_names)]`` targets, by joint name."""
    if not msg.points:
        raise SchemaError("JointTrajectory.points: empty")
    point = msg.points[-1]
    index = {name: i for i, name in enumerate(msg.joint_names)}
    missing = [j for j in joint_names if j not in index]
    if missing:
        raise SchemaError(f"JointTrajectory.joint_names: missing joints {missing}")
    positions = list(point.positions)
    return np.array([positions[index[j]] for j in joint_names], dtype=np.float32)


def array_to_command(msg: Any, joint_names: Sequence[str]) -> np.ndarray:
    """A ``Float64MultiArray`` → float32 ``[len(joint_names)]`` targets (values in joint order)."""
    data = list(msg.data)
    if len(data) != len(joint_names):
        raise SchemaError(f"Float64MultiArray.data: {len(data)} values, expected {len(joint_names)}")
    return np.array(data, dtype=np.float32)


def _check_command(action: np.ndarray, joint_names: Sequence[str]) -> None:
    a = np.asarray(action)
    if a.ndim != 1 or a.shape[0] != len(joint_names):
        raise SchemaError(f"action: expected shape [{len(joint_names)}], got {list(a.shape)}")
    if not np.all(np.isfinite(a)):
        raise SchemaError("action: contains NaN or inf")


def build(cls: Any, fields: dict[str, Any]) -> Any:
    """Build a message of class ``cls`` from a field dict, building nested messages from their field
    types' default values (works for ros2-pyterfaces dataclasses and rclpy message classes alike)."""
    proto = cls()
    kwargs: dict[str, Any] = {}
    for name, value in fields.items():
        default = getattr(proto, name)
        if isinstance(value, dict):
            kwargs[name] = build(type(default), value)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            kwargs[name] = [build(_element_type(cls, name), v) for v in value]
        else:
            kwargs[name] = value
    return cls(**kwargs)


def _element_type(cls: Any, field_name: str) -> Any:
    """The message class of the elements of sequence field ``field_name`` (e.g. JointTrajectoryPoint)."""
    import typing

    try:  # ros2-pyterfaces dataclasses: the annotation names the element type
        hint = typing.get_type_hints(cls, include_extras=True)[field_name]
        for meta in getattr(hint, "__metadata__", ()):
            sub = getattr(meta, "subtype", None)
            if isinstance(sub, type):
                return sub
    except (KeyError, TypeError, NameError):
        pass
    # rclpy messages: SLOT_TYPES carry NamespacedType (package, "msg", name)
    slot_types = dict(zip(getattr(cls, "__slots__", ()), getattr(cls, "SLOT_TYPES", ()), strict=False))
    slot = slot_types.get(f"_{field_name}")
    value_type = getattr(slot, "value_type", None)
    if value_type is not None and hasattr(value_type, "namespaces"):
        import importlib

        module = importlib.import_module(".".join(value_type.namespaces))
        return getattr(module, value_type.name)
    raise SchemaError(f"{cls.__name__}.{field_name}: cannot tell the element message type")


# ---- topic names -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArmTopics:
    """The ROS 2 topics of one arm. Defaults follow ros2_control and the realsense2_camera driver."""

    joint_states: str = "/joint_states"
    trajectory_command: str = "/arm_controller/joint_trajectory"  # JointTrajectoryController
    array_command: str = "/forward_position_controller/commands"  # forward command controller
    color: str = "/camera/camera/color/image_raw"
    depth: str = "/camera/camera/aligned_depth_to_color/image_raw"
    estop: str = "/estop"  # std_msgs/Bool: true engages the driver's latching e-stop, false releases it
    driver_status: str = "/driver_status"  # std_msgs/String, JSON: {"estop", "stale", "commands", ...}

    def command(self, kind: CommandKind) -> str:
        if kind not in COMMAND_KINDS:
            raise ValueError(f"command kind must be one of {COMMAND_KINDS}, got {kind!r}")
        return self.trajectory_command if kind == "trajectory" else self.array_command
