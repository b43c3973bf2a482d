"""The project's DDS transport (cyclonedds, no rclpy) as a peer process for the interop tests.

``publish``: publish the messages of ``messages()`` on their topics until SIGTERM.
``echo``: print the first message received on each topic as one JSON line (canonical fields), then exit.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from typing import Any

import numpy as np

from robot_agent import ros_mapping

JOINTS = ["shoulder", "elbow", "wrist", "gripper"]
TOPICS = {"JointState": "/interop/joint_states", "Image": "/interop/image", "JointTrajectory": "/interop/trajectory"}


def messages() -> dict[str, dict[str, Any]]:
    """One message per type, as field dicts (``ros_mapping.build`` builds them for rclpy or cyclonedds)."""
    rgb = (np.arange(6 * 8 * 3, dtype=np.uint32) * 7 % 256).astype(np.uint8).reshape(6, 8, 3)
    joints = ros_mapping.joint_state_fields(
        JOINTS, np.array([0.1, -0.2, 0.3, 0.9]), np.array([0.5, 0.0, -0.5, 0.0]), 1.25
    )
    image = ros_mapping.rgb_to_image_fields(rgb, 2.5)
    trajectory = ros_mapping.action_to_trajectory_fields(np.array([0.3, 1.1, 0.9, 1.0]), JOINTS, time_from_start=0.1)
    return {"JointState": joints, "Image": image, "JointTrajectory": trajectory}


def canonical(value: Any) -> Any:
    """A message (rclpy's or ros2-pyterfaces') or field value as plain JSON data, for a field-by-field compare."""
    if hasattr(value, "get_fields_and_field_types"):  # rclpy
        return {name: canonical(getattr(value, name)) for name in value.get_fields_and_field_types()}
    if hasattr(value, "__dataclass_fields__"):  # ros2-pyterfaces
        return {name: canonical(getattr(value, name)) for name in value.__dataclass_fields__}
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    if isinstance(value, bytes | bytearray | memoryview):
        return list(bytes(value))
    if isinstance(value, np.ndarray):
        return [canonical(v) for v in value.tolist()]
    if isinstance(value, list | tuple) or type(value).__name__ == "array":
        return [canonical(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float):
        return round(value, 9)
    return value


def main(mode: str, domain_id: int) -> None:
    from robot_agent.transports import dds

    msgs = dds.messages()
    domain = dds.RosDomain(domain_id)
    if mode == "publish":
        pubs = {kind: domain.publisher(TOPICS[kind], getattr(msgs, kind)) for kind in TOPICS}
        stop = False

        def _stop(*_: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, _stop)
        print(json.dumps({"peer": "ready"}), flush=True)
        fields = messages()
        while not stop:
            for kind, pub in pubs.items():
                pub.publish(fields[kind])
            time.sleep(0.05)
    else:
        subs = {kind: domain.subscription(TOPICS[kind], getattr(msgs, kind)) for kind in TOPICS}
        print(json.dumps({"peer": "ready"}), flush=True)
        seen: dict[str, Any] = {}
        deadline = time.monotonic() + 60
        while len(seen) < len(subs) and time.monotonic() < deadline:
            for kind, sub in subs.items():
                if kind not in seen and sub.poll():
                    seen[kind] = canonical(sub.latest)
                    print(json.dumps({kind: seen[kind]}), flush=True)
            time.sleep(0.01)
    domain.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
