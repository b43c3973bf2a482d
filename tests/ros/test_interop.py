"""The project's DDS transport (cyclonedds + ros2-pyterfaces, no rclpy) against rclpy on Fast DDS:
sensor_msgs/JointState, sensor_msgs/Image and trajectory_msgs/JointTrajectory, both directions, field by field."""

from __future__ import annotations

import json
from typing import Any

from sensor_msgs.msg import Image, JointState
from trajectory_msgs.msg import JointTrajectory

from robot_agent import ros_mapping
from tests.ros.conftest import Proc, Ros, loopback_env, main_python
from tests.ros.cyclone_peer import TOPICS, canonical, messages

TYPES: dict[str, Any] = {"JointState": JointState, "Image": Image, "JointTrajectory": JointTrajectory}


def _peer(mode: str, domain: int) -> Proc:
    argv = [main_python(), "-m", "tests.ros.cyclone_peer", mode, str(domain)]
    return Proc(argv, loopback_env(domain), ready='"ready"')


def test_rclpy_receives_what_the_dds_transport_publishes(ros: Ros, domain: int) -> None:
    received: dict[str, Any] = {}
    for kind, cls in TYPES.items():
        ros.node.create_subscription(cls, TOPICS[kind], lambda m, k=kind: received.setdefault(k, m), 10)
    peer = _peer("publish", domain)
    try:
        ros.spin_while(lambda: len(received) < len(TYPES), 60, f"all of {sorted(TYPES)} from Cyclone")
    finally:
        peer.stop()
    for kind, fields in messages().items():
        want = canonical(ros_mapping.build(TYPES[kind], fields))  # the message rclpy builds from the same fields
        assert canonical(received[kind]) == want, kind
    assert received["Image"].encoding == "rgb8" and (received["Image"].height, received["Image"].width) == (6, 8)
    assert list(received["JointState"].name) == ["shoulder", "elbow", "wrist", "gripper"]


def test_the_dds_transport_receives_what_rclpy_publishes(ros: Ros, domain: int) -> None:
    pubs = {kind: ros.node.create_publisher(cls, TOPICS[kind], 10) for kind, cls in TYPES.items()}
    sent = {kind: ros_mapping.build(TYPES[kind], fields) for kind, fields in messages().items()}
    peer = _peer("echo", domain)
    got: dict[str, Any] = {}

    def collect() -> bool:
        for line in list(peer.lines):
            if line.startswith("{") and "peer" not in line:
                got.update(json.loads(line))
        return len(got) < len(TYPES)

    try:
        while collect():
            for kind, pub in pubs.items():
                pub.publish(sent[kind])
            ros.spin_for(0.05)
            assert peer.proc.poll() is None or not collect(), peer.output()[-2000:]
    finally:
        peer.stop()
    for kind, msg in sent.items():
        assert got[kind] == canonical(msg), kind
