"""Action tokens: each action dimension discretised into 256 bins (OpenVLA; WMPO, arXiv 2511.09515).

Bin edges are uniform between the dataset's per-dimension 1st and 99th percentiles (q01, q99), as
OpenVLA does; values outside are clipped into the first/last bin. Decoding returns bin centres.

Shapes: ``encode(actions float [..., A]) -> int64 [..., A]``; ``decode(tokens int [..., A]) -> float32 [..., A]``.
Only numpy: the tokenizer travels in ``norm_stats.json`` and a robot may decode without torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

N_BINS = 256  # WMPO / OpenVLA-OFT: 256 bins per action dimension (arXiv 2511.09515)
_MIN_WIDTH = 1e-6  # a dimension that never varies still gets bins of non-zero width


@dataclass(frozen=True)
class ActionTokenizer:
    """Per-dimension uniform bins on ``[low, high]`` (usually the dataset's q01 and q99)."""

    low: tuple[float, ...]
    high: tuple[float, ...]
    n_bins: int = N_BINS

    def __post_init__(self) -> None:
        if len(self.low) != len(self.high):
            raise ValueError(f"ActionTokenizer: low has {len(self.low)} dims, high has {len(self.high)}")
        if self.n_bins < 2:
            raise ValueError(f"ActionTokenizer: n_bins must be >= 2, got {self.n_bins}")
        if any(h < lo for lo, h in zip(self.low, self.high, strict=True)):
            raise ValueError(f"ActionTokenizer: high < low in some dimension: low={self.low}, high={self.high}")

    @property
    def action_dim(self) -> int:
        return len(self.low)

    @classmethod
    def fit(
        cls, actions: np.ndarray, n_bins: int = N_BINS, quantiles: tuple[float, float] = (0.01, 0.99)
    ) -> ActionTokenizer:
        """Bins from a dataset's actions ``[N, A]``: uniform between the per-dim quantiles."""
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim != 2 or actions.shape[0] == 0:
            raise ValueError(f"ActionTokenizer.fit: expected actions [N, A] with N > 0, got {actions.shape}")
        low = np.quantile(actions, quantiles[0], axis=0)
        high = np.quantile(actions, quantiles[1], axis=0)
        return cls(low=tuple(float(x) for x in low), high=tuple(float(x) for x in high), n_bins=n_bins)

    def _edges(self) -> tuple[np.ndarray, np.ndarray]:
        low = np.asarray(self.low, dtype=np.float64)
        width = np.maximum(np.asarray(self.high, dtype=np.float64) - low, _MIN_WIDTH)
        return low, width

    def encode(self, actions: np.ndarray) -> np.ndarray:
        """Float actions ``[..., A]`` -> int64 bin ids ``[..., A]`` in ``[0, n_bins)``; out-of-range values clip."""
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape[-1] != self.action_dim:
            raise ValueError(f"ActionTokenizer.encode: expected last dim {self.action_dim}, got {actions.shape}")
        low, width = self._edges()
        bins = np.floor((actions - low) / width * self.n_bins)
        return np.clip(bins, 0, self.n_bins - 1).astype(np.int64)

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """Bin ids ``[..., A]`` -> float32 actions ``[..., A]`` at the bin centres."""
        tokens = np.asarray(tokens)
        if tokens.shape[-1] != self.action_dim:
            raise ValueError(f"ActionTokenizer.decode: expected last dim {self.action_dim}, got {tokens.shape}")
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.n_bins):
            raise ValueError(
                f"ActionTokenizer.decode: token ids must be in [0, {self.n_bins}), got {tokens.min()}..{tokens.max()}"
            )
        low, width = self._edges()
        return (low + (tokens.astype(np.float64) + 0.5) * width / self.n_bins).astype(np.float32)

    def bin_width(self) -> np.ndarray:
        """Width of one bin per dimension ``[A]``: the round-trip error is at most half of it inside the range."""
        return (self._edges()[1] / self.n_bins).astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "uniform-quantile", "n_bins": self.n_bins, "low": list(self.low), "high": list(self.high)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ActionTokenizer:
        if d.get("kind", "uniform-quantile") != "uniform-quantile":
            raise ValueError(f"ActionTokenizer: unknown kind {d.get('kind')!r}")
        return cls(
            low=tuple(float(x) for x in d["low"]), high=tuple(float(x) for x in d["high"]), n_bins=int(d["n_bins"])
        )
