"""RealSense camera fed through ``rs.software_device``: frames, aligned depth, timestamps, dropped frames."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.conftest import need

try:
    import pyrealsense2  # noqa: F401

    HAVE_RS = True
except ImportError:  # not installed, or libusb-1.0-0 missing
    HAVE_RS = False

H, W = 48, 64


def _frames(numbers: list[int], seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, int, float]]:
    """Color, depth (block-wise constant, 1 mm units), frame number, device timestamp in ms."""
    rng = np.random.default_rng(seed)
    out = []
    for n in numbers:
        color = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        blocks = rng.integers(300, 4000, (H // 8, W // 8), dtype=np.uint16)
        depth = np.kron(blocks, np.ones((8, 8), dtype=np.uint16))
        out.append((color, depth, n, n * 1000.0 / 30))
    return out


def _camera(numbers: list[int], warmup: int, depth_units: float = 0.001):
    need(HAVE_RS, "pyrealsense2 (pip install 'vla-flywheel[realsense]'; apt-get install libusb-1.0-0)")
    from robot_agent.cameras.realsense import RealSenseCamera, RealSenseConfig, SoftwareDeviceSource

    config = RealSenseConfig(name="wrist", width=W, height=H, fps=30, warmup_frames=warmup)
    frames = _frames(numbers)
    source = SoftwareDeviceSource(config, depth_units=depth_units, feed=iter(frames))
    return RealSenseCamera(config, source=source), {n: (c, d) for c, d, n, _ in frames}


def _read_all(cam) -> list:
    out = []
    while True:
        try:
            out.append(cam.read(timeout_s=0.3))
        except TimeoutError:
            return out


def test_color_and_aligned_depth_come_through_unchanged() -> None:
    cam, sent = _camera(list(range(8)), warmup=2)
    with cam:
        frames = _read_all(cam)
    assert len(frames) >= 4
    for f in frames:
        color, depth = sent[f.index]
        assert f.color.dtype == np.uint8 and f.color.shape == (H, W, 3)
        np.testing.assert_array_equal(f.color, color)
        assert f.depth is not None and f.depth.dtype == np.uint16 and f.depth.shape == (H, W)
        # Same intrinsics, identity extrinsics: alignment maps depth onto color pixel for pixel,
        # except where a depth edge lands between pixels.
        assert np.mean(f.depth == depth) > 0.9
        assert f.timestamp == pytest.approx(f.index / 30, abs=1e-6)  # device clock, seconds


def test_warmup_frames_are_skipped() -> None:
    cam, _ = _camera(list(range(10)), warmup=4)
    with cam:
        first = cam.read(timeout_s=1.0)
    assert first.index >= 4


def test_dropped_frames_are_counted_from_frame_number_gaps() -> None:
    numbers = [0, 1, 2, 3, 4, 5, 8, 9, 10, 15, 16]  # 6, 7 and 11..14 never arrive: 6 dropped
    cam, _ = _camera(numbers, warmup=3)
    with cam:
        frames = _read_all(cam)
        indices = [f.index for f in frames]
        assert indices[-3:] == [10, 15, 16]
        expected = sum(b - a - 1 for a, b in itertools.pairwise(indices))
        assert cam.dropped_frames == expected == 6


def test_depth_units_are_converted_to_millimetres() -> None:
    cam, sent = _camera(list(range(6)), warmup=1, depth_units=0.0001)  # 0.1 mm units (D405)
    with cam:
        f = cam.read(timeout_s=1.0)
    _, raw = sent[f.index]
    expected = np.round(raw * 0.1).astype(np.uint16)
    assert f.depth is not None
    assert np.mean(np.abs(f.depth.astype(int) - expected) <= 1) > 0.9


def test_reading_before_connect_is_an_error() -> None:
    cam, _ = _camera([0, 1], warmup=0)
    with pytest.raises(RuntimeError, match="not connected"):
        cam.read()
