"""Synthetic demonstrations for the SFT tests, written into a real Zarr episode store."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_store.episodes import EpisodeStore
from data_store.schema import Observation, RobotSpec

SPEC = RobotSpec(
    action_dim=4, state_dim=4, action_low=(-1.0,) * 4, action_high=(1.0,) * 4, cameras={"corner4": (64, 64)}
)


def demo_store(root: Path, episodes: int = 3, steps: int = 12) -> EpisodeStore:
    """``episodes`` successful episodes (plus one failed one, which SFT must skip).

    Episode e shows a frame of colour e and sends a fixed action pattern of its own, so a policy can
    learn the mapping from the image (and instruction) to the chunk.
    """
    store = EpisodeStore(root)
    rng = np.random.default_rng(0)
    patterns = rng.uniform(-0.9, 0.9, size=(episodes + 1, 4)).astype(np.float32)
    for e in range(episodes + 1):
        instruction = ["close the drawer", "open the window", "press the button", "open the drawer"][e % 4]
        w = store.create(SPEC, task=f"task-{e % 2}", instruction=instruction, policy_version="scripted")
        for t in range(steps):
            image = np.full((64, 64, 3), 40 * e + 20, np.uint8)
            image[t % 64, :, 1] = 255  # a line that moves with t
            obs = Observation(
                images={"corner4": image},
                state=np.array([t / steps, e, 0, 1], np.float32),
                instruction=instruction,
                timestamp=t / 10,
            )
            w.append(obs, patterns[e] * (1 if t % 2 == 0 else -1))
        w.finish(success=e < episodes)
    return store
