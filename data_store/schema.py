"""The contracts that cross package boundaries: observations, action chunks, episode specs.

Shapes are written at the boundary (docs/architecture.md, "Contracts"):

- ``Observation.images[camera]``: uint8 ``[H, W, 3]``, upright.
- ``Observation.depth[camera]``: uint16 ``[H, W]`` (optional).
- ``Observation.state``: float32 ``[S]`` (proprio).
- ``ActionChunk.actions``: float32 ``[K, A]`` in the robot's action space.

Only numpy here: a robot that runs remote inference imports this without torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

SCHEMA_VERSION = 1
DEFAULT_CHUNK = 8  # K: WMPO/WoVR action chunk length (arXiv 2511.09515, 2602.13977)
DEFAULT_FPS = 10.0

EpisodeStatus = Literal["recording", "complete", "aborted"]
SuccessLabel = Literal["true", "false", "unknown"]


class SchemaError(ValueError):
    """A value does not match the contract. The message names the field and what was expected."""


@dataclass
class Observation:
    """What the robot sees at one control tick."""

    images: dict[str, np.ndarray]
    state: np.ndarray
    instruction: str
    timestamp: float
    depth: dict[str, np.ndarray] | None = None

    @classmethod
    def fake(cls, spec: RobotSpec, instruction: str = "do the task", seed: int = 0) -> Observation:
        """A random observation that matches ``spec``: for smoke tests and health probes."""
        rng = np.random.default_rng(seed)
        images = {name: rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for name, (h, w) in spec.cameras.items()}
        depth = {
            name: rng.integers(0, 4000, size=(h, w), dtype=np.uint16) for name, (h, w) in spec.depth_cameras.items()
        }
        state = rng.uniform(-1, 1, size=spec.state_dim).astype(np.float32)
        return cls(images=images, state=state, instruction=instruction, timestamp=0.0, depth=depth or None)


@dataclass
class ActionChunk:
    """K actions to run in order, plus what sampling produced them (for RL)."""

    actions: np.ndarray  # float32 [K, A]
    token_ids: np.ndarray | None = None  # int64 [K, A] when the policy tokenises actions
    logprob: float | None = None  # sum of token log-probs of the chunk
    policy_version: str | None = None

    def __post_init__(self) -> None:
        self.actions = np.asarray(self.actions, dtype=np.float32)
        if self.actions.ndim != 2:
            raise SchemaError(f"ActionChunk.actions: expected shape [K, A], got {self.actions.shape}")

    def __len__(self) -> int:
        return int(self.actions.shape[0])


@dataclass(frozen=True)
class RobotSpec:
    """What a robot offers: its cameras, proprio and action space. Episodes and policies are checked against it."""

    action_dim: int
    state_dim: int
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    cameras: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (H, W)
    depth_cameras: dict[str, tuple[int, int]] = field(default_factory=dict)
    fps: float = DEFAULT_FPS
    action_names: tuple[str, ...] = ()
    state_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.action_low) != self.action_dim or len(self.action_high) != self.action_dim:
            raise SchemaError(
                f"RobotSpec.action_low/high: expected {self.action_dim} values each, "
                f"got {len(self.action_low)} and {len(self.action_high)}"
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "action_dim": self.action_dim,
            "state_dim": self.state_dim,
            "action_low": list(self.action_low),
            "action_high": list(self.action_high),
            "cameras": {k: list(v) for k, v in self.cameras.items()},
            "depth_cameras": {k: list(v) for k, v in self.depth_cameras.items()},
            "fps": self.fps,
            "action_names": list(self.action_names),
            "state_names": list(self.state_names),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RobotSpec:
        return cls(
            action_dim=int(d["action_dim"]),
            state_dim=int(d["state_dim"]),
            action_low=tuple(float(x) for x in d["action_low"]),
            action_high=tuple(float(x) for x in d["action_high"]),
            cameras={k: (int(v[0]), int(v[1])) for k, v in d.get("cameras", {}).items()},
            depth_cameras={k: (int(v[0]), int(v[1])) for k, v in d.get("depth_cameras", {}).items()},
            fps=float(d.get("fps", DEFAULT_FPS)),
            action_names=tuple(d.get("action_names", ())),
            state_names=tuple(d.get("state_names", ())),
        )


def check_observation(obs: Observation, spec: RobotSpec) -> None:
    """Raise ``SchemaError`` naming the field and the expected value when ``obs`` does not match ``spec``."""
    for name, (h, w) in spec.cameras.items():
        if name not in obs.images:
            raise SchemaError(f"images[{name!r}]: missing (expected uint8 [{h}, {w}, 3])")
        _check_array(f"images[{name!r}]", obs.images[name], np.uint8, (h, w, 3))
    for name, (h, w) in spec.depth_cameras.items():
        if obs.depth is None or name not in obs.depth:
            raise SchemaError(f"depth[{name!r}]: missing (expected uint16 [{h}, {w}])")
        _check_array(f"depth[{name!r}]", obs.depth[name], np.uint16, (h, w))
    _check_array("state", obs.state, np.float32, (spec.state_dim,))
    if not isinstance(obs.instruction, str):
        raise SchemaError(f"instruction: expected str, got {type(obs.instruction).__name__}")
    if not math.isfinite(float(obs.timestamp)):
        raise SchemaError(f"timestamp: expected a finite float, got {obs.timestamp!r}")


def check_action(action: np.ndarray, spec: RobotSpec) -> None:
    _check_array("action", action, np.float32, (spec.action_dim,))


def _check_array(field_name: str, value: Any, dtype: type, shape: tuple[int, ...]) -> None:
    if not isinstance(value, np.ndarray):
        raise SchemaError(
            f"{field_name}: expected numpy array {np.dtype(dtype).name} {list(shape)}, got {type(value).__name__}"
        )
    if value.dtype != np.dtype(dtype):
        raise SchemaError(f"{field_name}: expected dtype {np.dtype(dtype).name}, got {value.dtype.name}")
    if tuple(value.shape) != shape:
        raise SchemaError(f"{field_name}: expected shape {list(shape)}, got {list(value.shape)}")
