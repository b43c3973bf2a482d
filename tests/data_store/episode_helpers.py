"""Synthetic episodes for the data_store tests: a small RobotSpec and steps whose pixels encode the step."""

from __future__ import annotations

import numpy as np

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
    """Step ``t``: every pixel of every frame is ``t % 256`` (so a reader can check a frame is whole),
    state and action are ``t``-valued, depth is ``t * 10``."""
    images = {name: np.full((h, w, 3), t % 256, np.uint8) for name, (h, w) in spec.cameras.items()}
    depth = {name: np.full((h, w), t * 10, np.uint16) for name, (h, w) in spec.depth_cameras.items()}
    obs = Observation(
        images=images,
        state=np.full(spec.state_dim, t, np.float32),
        instruction=instruction,
        timestamp=t / spec.fps,
        depth=depth or None,
    )
    return obs, np.full(spec.action_dim, t / 1000.0, np.float32)
