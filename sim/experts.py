"""``ScriptedExpert``: Meta-World's hand-written policy for a task, with Gaussian action noise.

The expert reads Meta-World's raw observation vector (float64 ``[39]``: hand, gripper, object poses,
previous frame, goal) and returns an action float32 ``[4]`` in ``[-1, 1]``. Noise ``N(0, noise²)`` is
added to every component and the result clipped, so demonstrations cover small recoveries
(``noise=0`` reproduces the expert exactly).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from sim.tasks import TaskInfo, resolve_task


class ScriptedExpert:
    """``expert.act(raw_obs) -> action``; ``reset(seed)`` restarts the noise stream."""

    def __init__(self, task: str | TaskInfo, noise: float = 0.0, seed: int = 0) -> None:
        from metaworld.policies import ENV_POLICY_MAP

        self.task = task if isinstance(task, TaskInfo) else resolve_task(task)
        if self.task.env_name not in ENV_POLICY_MAP:
            raise ValueError(f"Meta-World has no scripted policy for {self.task.env_name!r}")
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        # the experts' gains saturate on purpose; Meta-World warns about it on every call
        warnings.filterwarnings("ignore", message=r"Constant\(s\) may be too high", category=UserWarning)
        policy_cls: Any = ENV_POLICY_MAP[self.task.env_name]  # concrete subclasses of an abstract base
        self._policy = policy_cls()
        self.noise = float(noise)
        self._rng = np.random.default_rng(seed)

    def reset(self, seed: int | Sequence[int] | None = None) -> None:
        """Restart the noise stream from ``seed`` (ints are mixed by ``np.random.SeedSequence``).

        The Meta-World experts keep no state of their own, so this is all an episode start needs."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)

    def act(self, raw_obs: np.ndarray) -> np.ndarray:
        """One action, float32 ``[4]`` in ``[-1, 1]``, for Meta-World's observation float64 ``[39]``."""
        action = np.asarray(self._policy.get_action(np.asarray(raw_obs, dtype=np.float64)), dtype=np.float64)
        if self.noise > 0:
            action = action + self._rng.normal(0.0, self.noise, size=action.shape)
        return np.clip(action, -1.0, 1.0).astype(np.float32)
