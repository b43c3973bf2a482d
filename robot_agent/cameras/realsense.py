"""Intel RealSense (D4xx) color + aligned depth as a ``Camera``.

- color rgb8 and depth z16 at the configured resolution and fps; depth is aligned to color
  (``rs.align``) so pixel (r, c) of both images is the same point, and converted to millimetres;
- the device is chosen by serial number (``None``: the only one connected; several: an error that
  lists them);
- the first ``warmup_frames`` are dropped (auto-exposure settles; Intel recommends ~30 at 30 fps);
- ``Frame.timestamp`` is the device's hardware clock (seconds) where the device gives it, and
  ``Frame.index`` its frame number; a gap between consecutive numbers counts as dropped frames
  (``dropped_frames``).

The frames come from a ``FrameSource``: ``PipelineSource`` opens a real device through
``rs.pipeline``; ``SoftwareDeviceSource`` is an ``rs.software_device`` whose frames the caller injects
(tests, demos without a camera). Both hand out the same ``rs.composite_frame`` objects.

Shapes: color uint8 ``[H, W, 3]`` RGB, depth uint16 ``[H, W]`` mm.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from data_store.optional import MissingDependency
from robot_agent.cameras.base import Camera, Frame

INSTALL = "pip install 'vla-flywheel[realsense]'   # pyrealsense2; on Linux also: apt-get install libusb-1.0-0"


def _rs() -> Any:
    try:
        import pyrealsense2 as rs
    except ImportError as e:
        raise MissingDependency("pyrealsense2", INSTALL) from e
    return rs


@dataclass(frozen=True)
class RealSenseConfig:
    name: str = "realsense"  # the camera's name in observations
    serial: str | None = None
    width: int = 640
    height: int = 480
    fps: int = 30
    depth: bool = True
    warmup_frames: int = 30


PRESETS = {
    "d435-vga": RealSenseConfig(),
    "d435-small": RealSenseConfig(width=424, height=240, fps=30),
    "d405-wrist": RealSenseConfig(name="wrist", width=640, height=480, fps=30),
}


class FrameSource(Protocol):
    def start(self) -> None: ...
    def wait_for_frames(self, timeout_ms: int) -> Any: ...
    def stop(self) -> None: ...


class PipelineSource:
    """A physical camera through ``rs.pipeline``."""

    def __init__(self, config: RealSenseConfig) -> None:
        self.config = config
        self._pipeline: Any = None

    def start(self) -> None:
        rs, c = _rs(), self.config
        serials = [d.get_info(rs.camera_info.serial_number) for d in rs.context().query_devices()]
        if c.serial is None and len(serials) != 1:
            raise RuntimeError(f"{len(serials)} RealSense devices connected {serials}: set the serial number")
        if c.serial is not None and c.serial not in serials:
            raise RuntimeError(f"no RealSense with serial {c.serial}; connected: {serials or 'none'}")
        rs_config = rs.config()
        rs_config.enable_device(c.serial or serials[0])
        rs_config.enable_stream(rs.stream.color, c.width, c.height, rs.format.rgb8, c.fps)
        if c.depth:
            rs_config.enable_stream(rs.stream.depth, c.width, c.height, rs.format.z16, c.fps)
        self._pipeline = rs.pipeline()
        self._pipeline.start(rs_config)

    def wait_for_frames(self, timeout_ms: int) -> Any:
        return self._pipeline.wait_for_frames(timeout_ms)

    def stop(self) -> None:
        if self._pipeline is not None:
            self._pipeline.stop()
            self._pipeline = None


InjectedFrame = tuple[np.ndarray, np.ndarray | None, int, float]  # color, depth (depth units), number, ms


class SoftwareDeviceSource:
    """An ``rs.software_device`` with one color and one depth stream; ``inject`` pushes a frame pair.

    With ``feed`` (an iterator of ``InjectedFrame``), each ``wait_for_frames`` first injects the next
    pair, as if the device produced it just then: deterministic, single-threaded tests."""

    def __init__(
        self, config: RealSenseConfig, depth_units: float = 0.001, feed: Iterator[InjectedFrame] | None = None
    ) -> None:
        rs, c = _rs(), config
        self.config = config
        self._device = rs.software_device()
        self._sensor = self._device.add_sensor("software")
        intr = rs.intrinsics()
        intr.width, intr.height, intr.fx, intr.fy = c.width, c.height, 0.8 * c.width, 0.8 * c.width
        intr.ppx, intr.ppy, intr.model, intr.coeffs = c.width / 2, c.height / 2, rs.distortion.none, [0.0] * 5
        self._profiles = {}
        for uid, (kind, fmt, bpp) in enumerate(
            [(rs.stream.color, rs.format.rgb8, 3), (rs.stream.depth, rs.format.z16, 2)][: 2 if c.depth else 1]
        ):
            vs = rs.video_stream()
            vs.type, vs.index, vs.uid, vs.width, vs.height = kind, 0, uid, c.width, c.height
            vs.fps, vs.bpp, vs.fmt, vs.intrinsics = c.fps, bpp, fmt, intr
            self._profiles[kind] = self._sensor.add_video_stream(vs)
        self._sensor.add_read_only_option(rs.option.depth_units, depth_units)
        self.depth_units = depth_units
        if c.depth:
            ext = rs.extrinsics()
            ext.rotation, ext.translation = [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0], [0.0, 0.0, 0.0]
            self._profiles[rs.stream.depth].register_extrinsics_to(self._profiles[rs.stream.color], ext)
        self._device.create_matcher(rs.matchers.dlr_c if c.depth else rs.matchers.default)
        self._syncer = rs.syncer()
        self._alive: list[np.ndarray] = []  # the SDK reads injected pixels later: keep them alive
        self._feed = feed

    def start(self) -> None:
        self._sensor.open(list(self._profiles.values()))
        self._sensor.start(self._syncer)

    def inject(self, color: np.ndarray, depth_raw: np.ndarray | None, frame_number: int, timestamp_ms: float) -> None:
        """Push one color (uint8 [H, W, 3]) and depth (uint16 [H, W], depth units) frame, as the device would."""
        rs = _rs()
        pairs = [(rs.stream.color, np.ascontiguousarray(color, dtype=np.uint8), 3)]
        if depth_raw is not None:
            pairs.append((rs.stream.depth, np.ascontiguousarray(depth_raw, dtype=np.uint16), 2))
        for kind, pixels, bpp in pairs:
            self._alive.append(pixels)
            f = rs.software_video_frame()
            f.pixels, f.stride, f.bpp = pixels, self.config.width * bpp, bpp
            f.timestamp, f.domain, f.frame_number = timestamp_ms, rs.timestamp_domain.hardware_clock, frame_number
            f.profile = self._profiles[kind].as_video_stream_profile()
            if kind == rs.stream.depth:
                f.depth_units = self.depth_units
            self._sensor.on_video_frame(f)
        del self._alive[:-8]  # frames older than a few pairs have been received and copied

    def wait_for_frames(self, timeout_ms: int) -> Any:
        if self._feed is not None:
            item = next(self._feed, None)
            if item is not None:
                self.inject(*item)
        return self._syncer.wait_for_frames(timeout_ms)

    def stop(self) -> None:
        self._sensor.stop()
        self._sensor.close()


class RealSenseCamera(Camera):
    def __init__(self, config: RealSenseConfig | None = None, *, source: FrameSource | None = None) -> None:
        self.config = config or RealSenseConfig()
        self.name = self.config.name
        self._source = source
        self._align: Any = None
        self._last_index: int | None = None
        self._dropped = 0
        self._streaming = False

    @property
    def dropped_frames(self) -> int:
        return self._dropped

    def connect(self) -> None:
        if self._streaming:
            return
        rs = _rs()
        if self._source is None:
            self._source = PipelineSource(self.config)
        self._source.start()
        self._streaming = True
        self._align = rs.align(rs.stream.color) if self.config.depth else None
        for _ in range(self.config.warmup_frames):
            self.read(timeout_s=5.0)
        self._dropped, self._last_index = 0, None  # warm-up gaps do not count

    def read(self, timeout_s: float = 1.0) -> Frame:
        if not self._streaming or self._source is None:
            raise RuntimeError(f"camera {self.name!r} is not connected")
        deadline = time.monotonic() + timeout_s
        while True:  # the syncer may hand out a lone depth or color frame first: wait for a full pair
            left_ms = int(max(1.0, (deadline - time.monotonic()) * 1000))
            try:
                frames = self._source.wait_for_frames(left_ms)
            except RuntimeError as e:
                raise TimeoutError(f"camera {self.name!r}: no frame within {timeout_s:.1f} s ({e})") from None
            if self._align is not None:
                frames = self._align.process(frames)
            color = frames.get_color_frame()
            depth = frames.get_depth_frame() if self.config.depth else None
            if color and (depth or not self.config.depth):
                return self._frame(color, depth)
            if time.monotonic() > deadline:
                raise TimeoutError(f"camera {self.name!r}: no color+depth pair within {timeout_s:.1f} s")

    def _frame(self, color: Any, depth: Any) -> Frame:
        index = int(color.get_frame_number())
        if self._last_index is not None and index > self._last_index + 1:
            self._dropped += index - self._last_index - 1
        self._last_index = index
        rgb = np.array(color.get_data(), dtype=np.uint8, copy=True)  # the SDK recycles its buffer
        depth_mm = None
        if depth is not None:
            raw = np.asarray(depth.get_data(), dtype=np.uint16)
            scale_mm = float(depth.get_units()) * 1000.0
            depth_mm = raw.copy() if abs(scale_mm - 1.0) < 1e-6 else np.clip(raw * scale_mm, 0, 65535).astype(np.uint16)
        return Frame(color=rgb, timestamp=float(color.get_timestamp()) / 1000.0, depth=depth_mm, index=index)

    def disconnect(self) -> None:
        if self._streaming and self._source is not None:
            self._streaming = False
            self._source.stop()
