"""ROS 2 messages ⇄ observations and actions, through real CDR bytes (ros2-pyterfaces, Jazzy types)."""

from __future__ import annotations

import numpy as np
import pytest

from data_store.schema import SchemaError
from robot_agent import ros_mapping as m
from tests.conftest import need


@pytest.fixture(scope="module")
def msgs():
    try:
        from robot_agent.transports.dds import messages

        return messages()
    except Exception as e:  # MissingDependency
        need(False, f"ros2-pyterfaces ({e})")


def _wire(cls, fields):
    """Build, serialise to CDR and parse back: what a subscriber on the other side sees."""
    return cls.deserialize(m.build(cls, fields).serialize())


def test_joint_state_is_matched_by_name(msgs) -> None:
    fields = m.joint_state_fields(["elbow", "extra", "shoulder"], np.array([0.5, 9.0, -0.25]), None, 12.5)
    js = _wire(msgs.JointState, fields)
    np.testing.assert_array_equal(m.joint_state_to_state(js, ["shoulder", "elbow"]), np.float32([-0.25, 0.5]))
    assert m.stamp_to_seconds(js.header.stamp) == 12.5
    with pytest.raises(SchemaError, match="missing joints \\['wrist'\\]"):
        m.joint_state_to_state(js, ["shoulder", "wrist"])


def test_rgb_and_depth_images_round_trip(msgs) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    depth = rng.integers(0, 65535, (5, 7), dtype=np.uint16)
    np.testing.assert_array_equal(m.image_to_rgb(_wire(msgs.Image, m.rgb_to_image_fields(rgb, 1.0))), rgb)
    np.testing.assert_array_equal(m.image_to_depth(_wire(msgs.Image, m.depth_to_image_fields(depth, 1.0))), depth)


@pytest.mark.parametrize("encoding", ["bgr8", "rgba8", "bgra8", "mono8"])
def test_other_color_encodings_become_rgb(msgs, encoding: str) -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (3, 4, 3), dtype=np.uint8)
    if encoding == "mono8":
        rgb[:] = rgb[:, :, :1]
        px = rgb[:, :, :1]
    else:
        px = rgb[:, :, ::-1] if encoding.startswith("bgr") else rgb
        if encoding.endswith("a8"):
            px = np.concatenate([px, np.full((3, 4, 1), 255, np.uint8)], axis=2)
    ch = px.shape[2]
    padded = np.zeros((3, 4 * ch + 2), np.uint8)  # a row step with padding, as some drivers send
    padded[:, : 4 * ch] = px.reshape(3, -1)
    fields = {"height": 3, "width": 4, "encoding": encoding, "step": 4 * ch + 2, "data": padded.tobytes()}
    np.testing.assert_array_equal(m.image_to_rgb(_wire(msgs.Image, fields)), rgb)


def test_float_depth_in_metres_becomes_millimetres(msgs) -> None:
    metres = np.array([[0.5, 1.2344], [np.nan, 0.0]], dtype="<f4")
    fields = {"height": 2, "width": 2, "encoding": "32FC1", "step": 8, "data": metres.tobytes()}
    np.testing.assert_array_equal(m.image_to_depth(_wire(msgs.Image, fields)), np.uint16([[500, 1234], [0, 0]]))


def test_wrong_encodings_name_the_field(msgs) -> None:
    fields = {"height": 1, "width": 1, "encoding": "yuv422", "step": 2, "data": b"\0\0"}
    with pytest.raises(SchemaError, match=r"Image\.encoding"):
        m.image_to_rgb(_wire(msgs.Image, fields))
    with pytest.raises(SchemaError, match=r"Image\.data"):
        m.image_to_rgb(_wire(msgs.Image, {"height": 2, "width": 2, "encoding": "rgb8", "step": 6, "data": b"\0" * 6}))


def test_commands_round_trip_both_kinds(msgs) -> None:
    names = ["shoulder", "elbow", "gripper"]
    action = np.float32([0.25, -1.5, 0.75])
    traj = _wire(msgs.JointTrajectory, m.action_to_trajectory_fields(action, names, time_from_start=0.1))
    assert traj.points[0].time_from_start.nanosec == 100_000_000
    np.testing.assert_array_equal(m.trajectory_to_command(traj, ["gripper", "shoulder", "elbow"]), action[[2, 0, 1]])
    arr = _wire(msgs.Float64MultiArray, m.action_to_array_fields(action, names))
    np.testing.assert_array_equal(m.array_to_command(arr, names), action)
    with pytest.raises(SchemaError, match="NaN"):
        m.action_to_array_fields(np.float32([0, np.nan, 0]), names)
    with pytest.raises(SchemaError, match="shape"):
        m.action_to_trajectory_fields(np.float32([0, 0]), names, 0.1)


def test_stamps_split_into_sec_and_nanosec() -> None:
    assert m.seconds_to_stamp(3.25) == {"sec": 3, "nanosec": 250_000_000}
    assert m.seconds_to_stamp(1.9999999999) == {"sec": 2, "nanosec": 0}
    assert m.stamp_to_seconds(type("T", (), {"sec": 7, "nanosec": 5})()) == pytest.approx(7.000000005)


def test_dds_names_follow_rmw() -> None:
    from robot_agent.transports.dds import dds_topic_name, dds_type_name

    assert dds_topic_name("/joint_states") == "rt/joint_states"
    assert dds_topic_name("camera/color/image_raw") == "rt/camera/color/image_raw"
    assert dds_type_name("sensor_msgs/msg/JointState") == "sensor_msgs::msg::dds_::JointState_"


def test_wire_types_carry_rosidl_names_and_jazzy_hashes(msgs) -> None:
    from robot_agent.transports.dds import type_hash, wire_type

    wire = wire_type(msgs.JointState)
    assert wire.__idl_typename__ == "sensor_msgs::msg::dds_::JointState_"
    # The advertised hash is the ROS type's, not the renamed wire class's.
    assert type_hash(msgs.JointState) == msgs.JointState.hash_rihs01() != wire.hash_rihs01()
    assert type_hash(wire) == type_hash(msgs.JointState)
    assert type_hash(msgs.JointState).startswith("RIHS01_")
    sample = m.build(wire, m.joint_state_fields(["a"], np.array([1.0]), None, 0.0))
    assert (
        sample.serialize()
        == m.build(msgs.JointState, m.joint_state_fields(["a"], np.array([1.0]), None, 0.0)).serialize()
    )


@pytest.mark.parametrize(
    ("frame_id", "encoding", "h", "w"), [("", "rgb8", 3, 5), ("cam", "mono8", 1, 7), ("c" * 6, "16UC1", 2, 3)]
)
def test_fast_image_codec_matches_the_generic_cdr(msgs, frame_id: str, encoding: str, h: int, w: int) -> None:
    """The wire Image type's buffer codec writes and reads the same bytes as ros2-pyterfaces, whatever the
    string paddings, in both byte orders and both XCDR versions."""
    from cyclonedds_idl import Endianness

    from robot_agent.transports import image_cdr
    from robot_agent.transports.dds import wire_type

    bpp = 2 if encoding == "16UC1" else (1 if encoding == "mono8" else 3)
    data = np.random.default_rng(h * w).integers(0, 256, h * w * bpp, dtype=np.uint8).tobytes()
    fields = {"header": {"stamp": {"sec": -3, "nanosec": 7}, "frame_id": frame_id}, "height": h, "width": w,
              "encoding": encoding, "is_bigendian": 0, "step": w * bpp, "data": data}  # fmt: skip
    generic = m.build(msgs.Image, fields)
    fast = m.build(wire_type(msgs.Image), fields)
    for v2 in (False, True):
        assert fast.serialize(use_version_2=v2) == generic.serialize(use_version_2=v2)
    assert image_cdr.decode_image(generic.serialize(endianness=Endianness.Big)) == fields
    back = wire_type(msgs.Image).deserialize(generic.serialize())
    assert (back.header.stamp.sec, back.header.frame_id, back.encoding, bytes(back.data)) == (
        -3,
        frame_id,
        encoding,
        data,
    )


def test_mapped_images_are_writable_copies(msgs) -> None:
    from robot_agent.transports.dds import wire_type

    rgb = np.zeros((2, 3, 3), np.uint8)
    msg = wire_type(msgs.Image).deserialize(m.build(msgs.Image, m.rgb_to_image_fields(rgb, 0.0)).serialize())
    out = m.image_to_rgb(msg)
    out[0, 0, 0] = 7  # a policy may normalise in place
    assert m.image_to_rgb(msg)[0, 0, 0] == 0
    depth = m.image_to_depth(
        wire_type(msgs.Image).deserialize(
            m.build(msgs.Image, m.depth_to_image_fields(np.zeros((2, 2), np.uint16), 0.0)).serialize()
        )
    )
    assert depth.flags.writeable
