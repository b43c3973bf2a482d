"""``Recorder``: the control loop's subscriber that writes every step into the episode store.

Step ``t`` holds the observation seen at tick ``t`` and the action actually sent after it (after the
safety filter), as ``data_store.episodes.EpisodeWriter.append`` expects. At the end the episode is
finished ``complete`` (with the robot's success, or ``unknown`` where it cannot tell or where the operator
will label it) or ``aborted`` with the reason (e-stop, non-finite action, operator interrupt, error).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from data_store.schema import Observation

if TYPE_CHECKING:
    from robot_agent.loop import EpisodeResult, StepInfo


class Recorder:
    """Writes an episode through ``writer`` (an ``EpisodeWriter``); ``record_success=False`` leaves it unknown."""

    def __init__(self, writer: Any, *, record_success: bool = True) -> None:
        self.writer = writer
        self.record_success = record_success

    @property
    def episode_id(self) -> str:
        return str(self.writer.episode_id)

    def on_episode_start(self, obs: Observation) -> None:
        pass

    def on_step(self, obs: Observation, action: np.ndarray, info: StepInfo) -> None:
        self.writer.append(obs, action)

    def on_episode_end(self, result: EpisodeResult) -> None:
        if self.writer.info.status != "recording":  # someone closed it already
            return
        if result.status == "complete":
            self.writer.finish(result.success if self.record_success else None, reason=result.reason)
        else:
            self.writer.abort(result.reason)
