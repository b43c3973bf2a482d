"""Synthetic episodes for the data_store tests: a small RobotSpec and steps whose pixels encode the step."""

from __future__ import annotations

import numpy as np

from data_store.episodes import EpisodeReader
from data_store.schema import Observation, RobotSpec


def small_spec(depth: bool = False, size: int = 16) -> RobotSpec:
    return RobotSpec(
        action_dim=4,
        state_dim=4,
        action_low=(-1.0,) * 4,
        action_high=(1.0,) * 4,
        cameras={"corner": (size, size)},
        depth_cameras={"corner": (size, size)} if depth else {},
        fps=10.0,
    )


def step(spec: RobotSpec, t: int, instruction: str = "close the drawer") -> tuple[Observation, np.ndarray]:
    """Step ``t``: every pixel of every frame is ``pixel(t)``, never 0 (the fill value of unwritten chunks),
    state and action are ``t``-valued, depth is ``(t + 1) * 10``."""
    images = {name: np.full((h, w, 3), pixel(t), np.uint8) for name, (h, w) in spec.cameras.items()}
    depth = {name: np.full((h, w), (t + 1) * 10, np.uint16) for name, (h, w) in spec.depth_cameras.items()}
    obs = Observation(
        images=images,
        state=np.full(spec.state_dim, t, np.float32),
        instruction=instruction,
        timestamp=t / spec.fps,
        depth=depth or None,
    )
    return obs, np.full(spec.action_dim, t / 1000.0, np.float32)


def pixel(t: int) -> int:
    """The value of every pixel of step ``t``'s frames: 1..250, so a zero (fill value) frame is visible."""
    return t % 250 + 1


def check_steps(reader: EpisodeReader) -> None:
    """Every published step of ``reader`` is whole: each frame (and depth map) is uniformly the value
    ``step`` wrote for its index, and state, action and timestamp match too."""
    n = len(reader)
    expected = np.array([pixel(t) for t in range(n)], np.uint8)
    for camera in reader.spec.cameras:
        frames = reader.images(camera)
        assert frames.shape[0] == n, f"{camera}: {frames.shape[0]} frames for length {n}"
        assert (frames == expected[:, None, None, None]).all(), f"{camera}: a frame is not what step wrote"
    for camera in reader.spec.depth_cameras:
        depth = reader.depth(camera)
        assert (depth == ((np.arange(n) + 1) * 10).astype(np.uint16)[:, None, None]).all()
    assert np.array_equal(reader.states()[:, 0], np.arange(n, dtype=np.float32))
    assert np.array_equal(reader.actions()[:, 0], (np.arange(n) / 1000.0).astype(np.float32))
    assert np.allclose(reader.timestamps(), np.arange(n) / reader.spec.fps)
