"""Normalisation statistics that travel inside the policy artifact (``norm_stats.json``).

- proprio state: mean/std per dimension, the model sees ``(state - mean) / std``;
- actions: the ``ActionTokenizer`` bins (per-dim q01/q99 of the training actions), plus the robot's
  action bounds, which every decoded action is clipped to.

Shapes: ``states [N, S]``, ``actions [N, A]``. Only numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from data_store.schema import RobotSpec
from vla.tokenizer import N_BINS, ActionTokenizer

_MIN_STD = 1e-3  # a state dimension that never moves must not blow up when normalised


@dataclass(frozen=True)
class NormStats:
    state_mean: tuple[float, ...]
    state_std: tuple[float, ...]
    tokenizer: ActionTokenizer
    action_low: tuple[float, ...]  # the robot's bounds: decoded actions are clipped to them
    action_high: tuple[float, ...]
    n_samples: int = 0  # how many steps the statistics came from (0: from the robot spec alone)

    @classmethod
    def fit(cls, states: np.ndarray, actions: np.ndarray, spec: RobotSpec, n_bins: int = N_BINS) -> NormStats:
        """Statistics of a training set: ``states [N, S]``, ``actions [N, A]``."""
        states = np.asarray(states, dtype=np.float64)
        if states.ndim != 2 or states.shape[1] != spec.state_dim:
            raise ValueError(f"NormStats.fit: expected states [N, {spec.state_dim}], got {states.shape}")
        if actions.ndim != 2 or actions.shape[1] != spec.action_dim:
            raise ValueError(f"NormStats.fit: expected actions [N, {spec.action_dim}], got {actions.shape}")
        std = np.maximum(states.std(axis=0), _MIN_STD)
        return cls(
            state_mean=tuple(float(x) for x in states.mean(axis=0)),
            state_std=tuple(float(x) for x in std),
            tokenizer=ActionTokenizer.fit(actions, n_bins=n_bins),
            action_low=spec.action_low,
            action_high=spec.action_high,
            n_samples=int(states.shape[0]),
        )

    @classmethod
    def from_spec(cls, spec: RobotSpec, n_bins: int = N_BINS) -> NormStats:
        """Statistics without data: identity state normalisation, bins over the robot's whole action range."""
        return cls(
            state_mean=(0.0,) * spec.state_dim,
            state_std=(1.0,) * spec.state_dim,
            tokenizer=ActionTokenizer(low=spec.action_low, high=spec.action_high, n_bins=n_bins),
            action_low=spec.action_low,
            action_high=spec.action_high,
        )

    def normalize_state(self, states: np.ndarray) -> np.ndarray:
        """``[..., S]`` -> float32 ``[..., S]``."""
        mean = np.asarray(self.state_mean, dtype=np.float32)
        return ((np.asarray(states, dtype=np.float32) - mean) / np.asarray(self.state_std, dtype=np.float32)).astype(
            np.float32
        )

    def decode_actions(self, tokens: np.ndarray) -> np.ndarray:
        """Token ids ``[..., A]`` -> float32 actions ``[..., A]``, within the robot's bounds."""
        actions = self.tokenizer.decode(tokens)
        return np.clip(actions, self.action_low, self.action_high).astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        return {
            "state": {"mean": list(self.state_mean), "std": list(self.state_std)},
            "action": {"low": list(self.action_low), "high": list(self.action_high)},
            "tokenizer": self.tokenizer.to_json(),
            "n_samples": self.n_samples,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> NormStats:
        return cls(
            state_mean=tuple(float(x) for x in d["state"]["mean"]),
            state_std=tuple(float(x) for x in d["state"]["std"]),
            tokenizer=ActionTokenizer.from_json(d["tokenizer"]),
            action_low=tuple(float(x) for x in d["action"]["low"]),
            action_high=tuple(float(x) for x in d["action"]["high"]),
            n_samples=int(d.get("n_samples", 0)),
        )
