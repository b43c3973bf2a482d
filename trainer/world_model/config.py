"""World-model configuration: a frozen dataclass with named presets (docs/architecture.md, "How the code reads").

The numbers follow WMPO (arXiv 2511.09515, §3.2) and WoVR's world model (arXiv 2602.13977) scaled down to a 2-core CPU:

- ``chunk_size`` K=8 frames per action chunk (both papers).
- context = 1 fixed reference frame (the episode's first, WoVR "first-frame anchoring") + ``memory_frames``
  most recent frames (WoVR: 4; WMPO: 4 without the anchor). We default to 2: at 64×64 in Meta-World the arm is
  position-controlled, two frames carry its motion, and each memory frame costs input width.
- ``context_noise``: noisy-context training. WMPO's paper says 50/1000, its code 15/1000; we draw the level per
  sample uniformly from [0, 0.15] (clean context inside the support because inference starts from real frames).
  Measured on drawer-close (128 base episodes, 16 open-loop replays of real actions judged by the reward model
  vs the real outcome): upper end 0.05 (4000 steps) → agreement 0.62, imagined success 0.88 vs 0.50 real;
  0.15 (3000 steps) → 0.81 and 0.56; 0.30 (3000 steps) → 0.56 and 0.94. Our model's own frames drift further
  from clean than a billion-parameter model's, so it must learn to repair more.
- ``sampling_steps``: few-step rectified-flow sampling (WoVR: 5 by default, 1–3 possible); 2 here, 1–10 allowed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class WorldModelConfig:
    image_size: tuple[int, int] = (64, 64)  # (H, W) of the frames the policy reads
    action_dim: int = 4  # A
    chunk_size: int = 8  # K frames generated per action chunk
    memory_frames: int = 2  # M most recent frames kept as context beside the reference frame
    patch: int = 4  # space-to-depth factor: the denoiser works on (H/patch)×(W/patch) grids of patch²·3 values
    frame_features: int = 16  # F channels per frame in the stem and the per-frame head
    trunk_channels: tuple[int, ...] = (32, 64, 96)  # diffusers UNet2DModel block widths
    layers_per_block: int = 1
    action_embed_dim: int = 128  # per-frame embedding: timestep + action + frame index (WMPO t_s + a_s)
    context_noise: float = 0.15  # max noise level on context frames in training (WMPO paper 50/1000; see above)
    sampling_steps: int = 2  # Euler steps of the rectified-flow sampler at inference (1–10)
    # Action normalisation, fitted on the training episodes: a_norm = (a - mean) / std.
    action_mean: tuple[float, ...] = field(default_factory=tuple)
    action_std: tuple[float, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        h, w = self.image_size
        if h % (self.patch * 2 ** (len(self.trunk_channels) - 1)) or w % (
            self.patch * 2 ** (len(self.trunk_channels) - 1)
        ):
            raise ValueError(f"image_size {self.image_size} must divide by patch·2^(levels-1)")
        if not 1 <= self.sampling_steps <= 10:
            raise ValueError(f"sampling_steps must be in 1..10, got {self.sampling_steps}")
        if self.memory_frames < 1:
            raise ValueError("memory_frames must be >= 1")

    @property
    def context_frames(self) -> int:
        """C = reference + memory."""
        return 1 + self.memory_frames

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> WorldModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        for k in ("image_size", "trunk_channels", "action_mean", "action_std"):
            if k in kw:
                kw[k] = tuple(kw[k])
        return cls(**kw)

    def replace(self, **changes: Any) -> WorldModelConfig:
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, WorldModelConfig] = {
    # Tests and smoke runs: 0.36M parameters, ~15 MFLOP per generated frame per sampling step.
    "tiny": WorldModelConfig(frame_features=8, trunk_channels=(32, 32), action_embed_dim=32),
    # The default for a 2-core CPU flywheel: 2.0M parameters, ~33 MFLOP per frame per sampling step.
    "small": WorldModelConfig(),
    # Where there is more compute (a GPU, a long night): 4.2M parameters, ~78 MFLOP per frame per step.
    "base": WorldModelConfig(frame_features=24, trunk_channels=(64, 96, 128)),
}
