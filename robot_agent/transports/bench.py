"""Figures of the DDS transport, as JSON lines: ``python -m robot_agent.transports.bench``.

- the Python cost of one sensor_msgs/Image on the wire (build + CDR serialise; parse + map back) at the
  fake arm's 64×64 and a RealSense's 640×480;
- ``DDSRobot.observe()`` against the fake driver process (poll, map joints, color and depth);
- the age of the newest joint state when observed (driver at 50 Hz: ~10 ms expected).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np

from data_store.measure import machine
from robot_agent import ros_mapping
from robot_agent.transports import dds


def _line(name: str, figure: str, value: float, unit: str, config: str) -> None:
    row = {"name": name, "figure": figure, "value": round(value, 4), "unit": unit, "machine": machine()}
    print(json.dumps({**row, "config": config}), flush=True)


def image_costs(repeats: int = 10) -> None:
    """The generic ros2-pyterfaces codec beside the wire type's buffer codec (``image_cdr``), same bytes."""
    msgs = dds.messages()
    codecs = {"generic ros2-pyterfaces cyclone codec": msgs.Image, "image_cdr buffer codec": dds.wire_type(msgs.Image)}
    for h, w in [(64, 64), (480, 640)]:
        rgb = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
        for codec, cls in codecs.items():
            start = time.perf_counter()
            for _ in range(repeats):
                blob = ros_mapping.build(cls, ros_mapping.rgb_to_image_fields(rgb, 0.0)).serialize()
            ser = (time.perf_counter() - start) / repeats
            start = time.perf_counter()
            for _ in range(repeats):
                ros_mapping.image_to_rgb(cls.deserialize(blob))
            de = (time.perf_counter() - start) / repeats
            config = f"{h}x{w} rgb8, {codec}, mean of {repeats}"
            _line("dds_image_serialize", "build + CDR-serialise one sensor_msgs/Image", ser * 1e3, "ms", config)
            _line("dds_image_parse", "CDR-parse one sensor_msgs/Image + map to uint8 [H,W,3]", de * 1e3, "ms", config)


def observe_costs(domain_id: int = 151, repeats: int = 200) -> None:
    from robot_agent.robots.dds import DDSRobot

    driver = subprocess.Popen(
        [sys.executable, "-m", "robot_agent.transports.fake_driver", "--domain-id", str(domain_id)],
        stdout=subprocess.PIPE,
    )
    try:
        assert driver.stdout is not None
        driver.stdout.readline()
        robot = DDSRobot(domain_id=domain_id)
        with robot:
            robot.home()
            ages, start = [], time.perf_counter()
            for _ in range(repeats):
                robot.observe()
                ages.append(time.monotonic() - robot._latest("joints")[1])
            per = (time.perf_counter() - start) / repeats
        config = f"fake-arm preset (64x64 color + depth), fake driver at 50 Hz, loopback, {repeats} calls"
        _line("dds_observe", "DDSRobot.observe()", per * 1e3, "ms", config)
        _line(
            "dds_joint_state_age",
            "age of the newest joint state at observe (median)",
            float(np.median(ages)) * 1e3,
            "ms",
            config,
        )
    finally:
        driver.terminate()
        driver.wait(timeout=15)


if __name__ == "__main__":
    image_costs()
    observe_costs()
