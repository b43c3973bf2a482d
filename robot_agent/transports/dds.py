"""ROS 2 topics on the DDS wire without rclpy: cyclonedds + ros2-pyterfaces (ROS 2 Jazzy types).

A ROS 2 node on ``rmw_cyclonedds_cpp`` talks to this module as to any other node, because what meets
on the wire is what rmw writes:

- topic ``/joint_states`` is the DDS topic ``rt/joint_states`` (``rt/`` = ROS topic prefix);
- type ``sensor_msgs/msg/JointState`` is the DDS type ``sensor_msgs::msg::dds_::JointState_``;
- the payload is the same CDR (ros2-pyterfaces reimplements ``common_interfaces`` and checks it against
  ROS 2); the endpoint's USER_DATA QoS carries ``typehash=RIHS01_...;`` as rmw_cyclonedds does in Jazzy,
  so ``ros2 topic info -v`` shows the type hash;
- QoS presets below are ROS 2's: ``DEFAULT`` (reliable, volatile, keep last 10), ``SENSOR_DATA`` (best
  effort, keep last 5), ``LATCHED`` (reliable, transient local, keep last 1).

The DDS domain is ``ROS_DOMAIN_ID`` (0 by default in ROS 2). Nothing here blocks in a callback: readers
are polled by the control loop, which keeps the newest sample.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from data_store.optional import MissingDependency
from robot_agent import ros_mapping
from robot_agent.transports import image_cdr

INSTALL = "pip install 'vla-flywheel[ros]'   # cyclonedds + ros2-pyterfaces[cyclone,cydr]"
ROS_TOPIC_PREFIX = "rt"


@dataclass(frozen=True)
class TopicQos:
    reliable: bool = True
    depth: int = 10
    transient_local: bool = False


DEFAULT = TopicQos()
SENSOR_DATA = TopicQos(reliable=False, depth=5)
LATCHED = TopicQos(reliable=True, depth=1, transient_local=True)


def dds_topic_name(ros_topic: str) -> str:
    """``/joint_states`` → ``rt/joint_states`` (rmw's mangling; relative names are taken as absolute)."""
    return f"{ROS_TOPIC_PREFIX}/{ros_topic.lstrip('/')}"


def dds_type_name(ros_type: str) -> str:
    """``sensor_msgs/msg/JointState`` → ``sensor_msgs::msg::dds_::JointState_`` (rosidl's DDS name)."""
    package, kind, name = ros_type.split("/")
    return f"{package}::{kind}::dds_::{name}_"


def ros_domain_id() -> int:
    return int(os.environ.get("ROS_DOMAIN_ID", "0"))


def messages() -> Any:
    """The ros2-pyterfaces message modules (cyclone backend), as one namespace.

    ``msgs.JointState``, ``msgs.Image``, ``msgs.JointTrajectory``, ``msgs.Float64MultiArray``,
    ``msgs.Bool``, ``msgs.String``. Imported here so a machine without the ``ros`` extra fails with
    the install line, and with ``ROS_DISTRO`` defaulting to jazzy (it picks the distro's type hashes)."""
    os.environ.setdefault("ROS_DISTRO", "jazzy")
    try:
        from ros2_pyterfaces.cyclone.sensor_msgs.msg import Image, JointState
        from ros2_pyterfaces.cyclone.std_msgs.msg import Bool, Float64MultiArray, String
        from ros2_pyterfaces.cyclone.trajectory_msgs.msg import JointTrajectory
    except ImportError as e:
        raise MissingDependency("ros2-pyterfaces", INSTALL) from e

    class _Msgs:
        pass

    ns = _Msgs()
    for cls in (Image, JointState, Bool, Float64MultiArray, String, JointTrajectory):
        setattr(ns, cls.__name__, cls)
    return ns


@cache
def wire_type(cls: type) -> type:
    """The subclass of a ros2-pyterfaces message whose DDS type name is rosidl's (same fields, same CDR).

    sensor_msgs/Image gets the buffer codec of ``image_cdr`` (the same bytes, ~100× faster)."""
    if getattr(cls, "__ros_type__", None):
        return cls
    ros_name = cls.get_type_name()  # type: ignore[attr-defined]
    namespace: dict[str, Any] = {"__ros_type__": cls}
    if ros_name == "sensor_msgs/msg/Image":
        namespace.update(serialize=_image_serialize, deserialize=classmethod(_image_deserialize))
    return type(cls.__name__, (cls,), namespace, typename=dds_type_name(ros_name))


def _image_serialize(self: Any, buffer: Any = None, endianness: Any = None, use_version_2: bool | None = None) -> bytes:
    if buffer is not None or (endianness is not None and endianness.name != "Little"):
        generic: Any = type(self).__mro__[1]  # the ros2-pyterfaces class: the generic path
        return bytes(generic.serialize(self, buffer, endianness, use_version_2))
    return image_cdr.encode_image(self, bool(use_version_2))


def _image_deserialize(cls: Any, data: Any, has_header: bool = True, use_version_2: bool | None = None) -> Any:
    if not has_header or not isinstance(data, bytes | bytearray | memoryview):
        return cls.__mro__[1].deserialize(data, has_header, use_version_2)
    return ros_mapping.build(cls, image_cdr.decode_image(data))


def type_hash(cls: type) -> str:
    """The ROS 2 type hash (RIHS01) of a message class: the ROS type's, also for its wire subclass
    (whose hash ros2-pyterfaces would compute from the renamed type)."""
    ros_type: Any = getattr(cls, "__ros_type__", None) or cls
    return str(ros_type.hash_rihs01())


def _cyclone() -> Any:
    try:
        import cyclonedds.core
        import cyclonedds.domain
        import cyclonedds.pub
        import cyclonedds.sub
        import cyclonedds.topic
        import cyclonedds.util
    except ImportError as e:
        raise MissingDependency("cyclonedds", INSTALL) from e
    return cyclonedds


def _qos(q: TopicQos, msg_cls: type) -> Any:
    dds = _cyclone()
    Policy = dds.core.Policy
    policies = [
        Policy.Reliability.Reliable(dds.util.duration(seconds=1)) if q.reliable else Policy.Reliability.BestEffort,
        Policy.Durability.TransientLocal if q.transient_local else Policy.Durability.Volatile,
        Policy.History.KeepLast(q.depth),
        Policy.Userdata(f"typehash={type_hash(msg_cls)};".encode()),
    ]
    return dds.core.Qos(*policies)


class Publisher:
    """Writes one ROS 2 topic. ``publish`` takes a message or a field dict (see ``ros_mapping``)."""

    def __init__(self, writer: Any, msg_cls: type) -> None:
        self._writer = writer
        self._cls = wire_type(msg_cls)
        self.count = 0

    def publish(self, msg: Any) -> None:
        if isinstance(msg, dict):
            msg = ros_mapping.build(self._cls, msg)
        elif type(msg) is not self._cls:
            msg = self._cls(**{f: getattr(msg, f) for f in msg.__dataclass_fields__})
        self._writer.write(msg)
        self.count += 1


class Subscription:
    """Reads one ROS 2 topic; ``poll`` drains what arrived and keeps the newest sample."""

    def __init__(self, reader: Any, msg_cls: type) -> None:
        self._reader = reader
        self._cls = wire_type(msg_cls)
        self.latest: Any = None
        self.received_at = 0.0  # time.monotonic() of the newest sample
        self.count = 0

    def poll(self) -> list[Any]:
        """Take every sample that arrived since the last poll (oldest first)."""
        # Invalid samples (a writer went away: dispose/unregister) carry no data: skip them.
        samples = [s for s in self._reader.take(N=64) if isinstance(s, self._cls)]
        if samples:
            self.latest = samples[-1]
            self.received_at = time.monotonic()
            self.count += len(samples)
        return samples

    def wait(self, timeout_s: float, after_count: int = 0) -> Any:
        """Poll until more than ``after_count`` samples have arrived; the newest one, or TimeoutError."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.poll()
            if self.count > after_count:
                return self.latest
            if time.monotonic() > deadline:
                raise TimeoutError(f"no message within {timeout_s:.1f} s")
            time.sleep(0.002)


class RosDomain:
    """One DDS participant on a ROS 2 domain: publishers and subscriptions for ROS 2 topics."""

    def __init__(self, domain_id: int | None = None) -> None:
        dds = _cyclone()
        self.domain_id = ros_domain_id() if domain_id is None else int(domain_id)
        if not 0 <= self.domain_id <= 232:
            raise ValueError(f"ROS domain id must be in [0, 232], got {self.domain_id}")
        self._dds = dds
        self._participant = dds.domain.DomainParticipant(self.domain_id)
        self._topics: dict[str, Any] = {}

    def _topic(self, ros_topic: str, msg_cls: type) -> Any:
        name = dds_topic_name(ros_topic)
        if name not in self._topics:
            self._topics[name] = self._dds.topic.Topic(self._participant, name, wire_type(msg_cls))
        return self._topics[name]

    def publisher(self, ros_topic: str, msg_cls: type, qos: TopicQos = DEFAULT) -> Publisher:
        writer = self._dds.pub.DataWriter(self._participant, self._topic(ros_topic, msg_cls), qos=_qos(qos, msg_cls))
        return Publisher(writer, msg_cls)

    def subscription(self, ros_topic: str, msg_cls: type, qos: TopicQos = DEFAULT) -> Subscription:
        reader = self._dds.sub.DataReader(self._participant, self._topic(ros_topic, msg_cls), qos=_qos(qos, msg_cls))
        return Subscription(reader, msg_cls)

    def close(self) -> None:
        """Delete the participant (and with it every reader and writer). Safe to call twice."""
        participant, self._participant = self._participant, None
        self._topics.clear()
        if participant is not None:
            participant.__del__()


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.01) -> None:
    """Poll ``predicate`` until it holds; TimeoutError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.1f} s waiting for {what}")
        time.sleep(poll_s)
