"""The ``Policy`` protocol: all that the robot, the trainer and GRPO ask of a policy.

``act`` is what the robot calls. ``sample`` and ``log_prob`` are what GRPO needs (docs/architecture.md,
"Contracts"): the log-prob of a chunk is the sum of its K×A token log-probs (WMPO Eq. 3).

Batched observations for ``sample``/``log_prob`` are a ``list[Observation]`` of length B; chunks come
back as float32 ``[B, K, A]``, token ids int64 ``[B, K, A]``, log-probs ``[B]`` (torch tensors for
tokens and log-probs, so gradients flow in ``log_prob``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from data_store.schema import ActionChunk, Observation, RobotSpec

if TYPE_CHECKING:  # torch only for type checking: a robot with remote inference runs without it
    import torch


@runtime_checkable
class Policy(Protocol):
    """Anything that turns an observation into an action chunk."""

    chunk_size: int  # K
    action_dim: int  # A

    def act(self, obs: Observation, temperature: float = 0.0) -> ActionChunk:
        """One chunk for the robot; temperature 0 is deterministic (the median bin of each action token)."""
        ...

    def reset(self) -> None:
        """Forget per-episode state (a replay cursor, a scripted expert's phase)."""
        ...


@runtime_checkable
class TrainablePolicy(Policy, Protocol):
    spec: RobotSpec | None  # the robot it acts for (its action bounds: the safety filter's), when it knows one

    def sample(self, batch: list[Observation], temperature: float) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
        """Sample chunks: (actions float32 [B,K,A], token_ids int64 [B,K,A], logprob float [B])."""
        ...

    def log_prob(self, batch: list[Observation], token_ids: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """Log-prob [B] of the given token ids under the current weights (differentiable)."""
        ...

    def parameters(self) -> Any: ...
