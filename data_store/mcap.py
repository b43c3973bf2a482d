"""Episodes → rosbag2 bags in MCAP storage, readable with ``ros2 bag play`` and any ROS 2 tool.

``export_mcap(store, episodes, out)`` writes one rosbag2 bag folder per episode, ``out/<episode_id>/``
(``metadata.yaml`` + ``<episode_id>_0.mcap``), with ROS 2 Jazzy message types (rosbags' typestore):

| topic | type | per step |
|---|---|---|
| ``/camera/<camera>/image_raw`` | sensor_msgs/msg/Image (rgb8) | color frame |
| ``/camera/<camera>/depth/image_raw`` | sensor_msgs/msg/Image (16UC1, mm) | depth, when recorded |
| ``/robot/state`` | std_msgs/msg/Float32MultiArray (dim label = state names) | proprio ``[S]`` |
| ``/robot/action`` | std_msgs/msg/Float32MultiArray (dim label = action names) | action sent ``[A]`` |
| ``/joint_states`` | sensor_msgs/msg/JointState | only for robots whose state is joint positions |
| ``/episode/info`` | std_msgs/msg/String (JSON) | once, at the first step |

Every message of step t is stamped with the recorded timestamp of step t (header stamp and bag
receive time), so ``ros2 bag play`` replays at the recorded rate. The action of step t is the one
sent after observation t (the store's convention).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from data_store.episode_info import EpisodeInfo
    from data_store.episodes import EpisodeReader, EpisodeStore

INSTALL = "pip install 'vla-flywheel[ros]'   # rosbags"
JOINT_SUFFIX = ".position"  # state names "<joint>.position" mean the state is joint positions


def export_mcap(store: EpisodeStore, episodes: Iterable[str | EpisodeInfo], out: str | Path) -> list[Path]:
    """Write each episode as a rosbag2/MCAP bag under ``out``; returns the bag folders in order.

    Raises FileExistsError when a bag folder exists already (rosbag2 never overwrites)."""
    try:
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.typesys import Stores, get_typestore
    except ImportError as e:
        raise RuntimeError(f"rosbags is not installed. Install it with:\n    {INSTALL}") from e
    typestore = get_typestore(Stores.ROS2_JAZZY)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bags = []
    for ep in episodes:
        episode_id = ep if isinstance(ep, str) else ep.episode_id
        bag = out / episode_id
        with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
            _write_episode(writer, typestore, store.open(episode_id))
        bags.append(bag)
    return bags


def _write_episode(writer: Any, ts: Any, reader: EpisodeReader) -> None:
    T = ts.types
    spec, info = reader.spec, reader.info
    stamps = reader.timestamps()
    states, actions = reader.states(), reader.actions()
    images = {cam: reader.images(cam) for cam in spec.cameras}
    depths = {cam: reader.depth(cam) for cam in spec.depth_cameras}
    joints = [n.removesuffix(JOINT_SUFFIX) for n in spec.state_names]
    is_joint_state = bool(spec.state_names) and all(n.endswith(JOINT_SUFFIX) for n in spec.state_names)

    conns = {
        "info": writer.add_connection("/episode/info", "std_msgs/msg/String", typestore=ts),
        "state": writer.add_connection("/robot/state", "std_msgs/msg/Float32MultiArray", typestore=ts),
        "action": writer.add_connection("/robot/action", "std_msgs/msg/Float32MultiArray", typestore=ts),
    }
    for cam in images:
        conns[f"rgb/{cam}"] = writer.add_connection(f"/camera/{cam}/image_raw", "sensor_msgs/msg/Image", typestore=ts)
    for cam in depths:
        conns[f"depth/{cam}"] = writer.add_connection(
            f"/camera/{cam}/depth/image_raw", "sensor_msgs/msg/Image", typestore=ts
        )
    if is_joint_state:
        conns["joints"] = writer.add_connection("/joint_states", "sensor_msgs/msg/JointState", typestore=ts)

    def put(key: str, msg: Any, t_ns: int) -> None:
        writer.write(conns[key], t_ns, ts.serialize_cdr(msg, msg.__msgtype__))

    def header(t: float, frame_id: str) -> Any:
        sec, nanosec = divmod(round(t * 1e9), 1_000_000_000)
        return T["std_msgs/msg/Header"](
            stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id=frame_id
        )

    def array(values: np.ndarray, names: tuple[str, ...]) -> Any:
        dim = T["std_msgs/msg/MultiArrayDimension"](label=",".join(names), size=len(values), stride=len(values))
        layout = T["std_msgs/msg/MultiArrayLayout"](dim=[dim], data_offset=0)
        return T["std_msgs/msg/Float32MultiArray"](layout=layout, data=np.asarray(values, dtype=np.float32))

    meta = {
        "episode_id": info.episode_id,
        "task": info.task,
        "instruction": info.instruction,
        "robot_id": info.robot_id,
        "policy_version": info.policy_version,
        "status": info.status,
        "success": info.success,
        "fps": info.fps,
        "spec": spec.to_json(),
    }
    for t in range(len(reader)):
        stamp = float(stamps[t])
        t_ns = round(stamp * 1e9)
        if t == 0:
            put("info", T["std_msgs/msg/String"](data=json.dumps(meta)), t_ns)
        put("state", array(states[t], spec.state_names), t_ns)
        put("action", array(actions[t], spec.action_names), t_ns)
        for cam, frames in images.items():
            h, w, _ = frames[t].shape
            msg = T["sensor_msgs/msg/Image"](
                header=header(stamp, cam),
                height=h,
                width=w,
                encoding="rgb8",
                is_bigendian=0,
                step=w * 3,
                data=np.ascontiguousarray(frames[t]).reshape(-1),
            )
            put(f"rgb/{cam}", msg, t_ns)
        for cam, frames in depths.items():
            h, w = frames[t].shape
            raw = np.ascontiguousarray(frames[t], dtype="<u2").view(np.uint8).reshape(-1)
            msg = T["sensor_msgs/msg/Image"](
                header=header(stamp, cam), height=h, width=w, encoding="16UC1", is_bigendian=0, step=w * 2, data=raw
            )
            put(f"depth/{cam}", msg, t_ns)
        if is_joint_state:
            msg = T["sensor_msgs/msg/JointState"](
                header=header(stamp, ""),
                name=joints,
                position=states[t].astype(np.float64),
                velocity=np.zeros(0, dtype=np.float64),
                effort=np.zeros(0, dtype=np.float64),
            )
            put("joints", msg, t_ns)


def read_bag(bag: str | Path) -> dict[str, list[tuple[int, Any]]]:
    """Every message of a bag, deserialised with the ROS 2 Jazzy typestore: ``{topic: [(t_ns, msg), ...]}``."""
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    typestore = get_typestore(Stores.ROS2_JAZZY)
    out: dict[str, list[tuple[int, Any]]] = {}
    with Reader(bag) as reader:
        for conn, t_ns, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t_ns, typestore.deserialize_cdr(raw, conn.msgtype)))
    return out
