"""Policies the robot agent runs without a trained model, and ``load_policy(spec)`` for all of them.

All follow ``vla.protocol.Policy``: ``act(obs) -> ActionChunk`` float32 ``[K, A]`` and ``reset()``.
A policy that needs to know its robot (action bounds, the simulator's raw state) implements
``attach(robot)``; the control loop calls it at the start of each episode, and after a swap.

- ``ScriptedPolicy``: Meta-World's scripted expert with Gaussian action noise, on ``SimRobot`` only (it
  reads the simulator's raw state). Chunks of K=1 by default (the expert is a closed-loop controller);
  with K>1 the chunk is the expert's next K actions, found by running the simulator ahead and putting
  it back (``SimRobot.lookahead``): MuJoCo is deterministic, so the chunk executed open-loop gives the
  same episode as the closed-loop expert (with the same noise draws).
- ``RandomPolicy``: uniform actions inside the robot's bounds, scaled by ``scale`` around their middle.
- ``ReplayPolicy``: the actions of a recorded episode, in order; ``PolicyExhausted`` after the last.

``load_policy`` specs: ``"scripted"``, ``"random"``, ``"replay:EPISODE_ID"``, a policy artifact
directory (``"artifact:DIR"`` or just the path), loaded by ``vla.artifact.load_artifact`` (torch is
imported then, not before), and a LeRobot checkpoint folder (``"lerobot:DIR"``, or just the path when it
holds LeRobot's ``config.json`` with a policy ``type``), run through ``vla.adapters.lerobot.LeRobotPolicy``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from data_store.schema import ActionChunk, Observation, RobotSpec
from vla.protocol import Policy


class PolicyExhausted(Exception):
    """The policy has no more actions (a replay reached the end of its episode)."""


class ScriptedPolicy:
    """Meta-World's scripted expert for the robot's task, with ``N(0, noise²)`` action noise."""

    def __init__(self, *, noise: float = 0.0, seed: int = 0, chunk_size: int = 1, robot: Any = None) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.noise, self.seed, self.chunk_size = float(noise), int(seed), int(chunk_size)
        self.action_dim = 4
        self.version = "scripted"
        self._robot: Any = None
        self._expert: Any = None
        if robot is not None:
            self.attach(robot)

    def attach(self, robot: Any) -> None:
        """Bind to a ``SimRobot`` (anything with ``raw_observation()`` and ``task``)."""
        if not hasattr(robot, "raw_observation") or not hasattr(robot, "task"):
            raise ValueError(
                f"the scripted expert needs the simulated arm; robot {type(robot).__name__} has no raw state"
            )
        if robot is self._robot:
            return
        from sim.experts import ScriptedExpert

        self._robot = robot
        self._expert = ScriptedExpert(robot.task, noise=self.noise, seed=self.seed)

    def reset(self) -> None:
        """New episode: the noise stream restarts from (policy seed, the robot's scene seed), so an episode
        repeats exactly whatever ran before it."""
        if self._expert is not None:
            scene = self._robot.seed
            self._expert.reset([self.seed, -1 if scene is None else int(scene)])

    def act(self, obs: Observation, temperature: float = 0.0) -> ActionChunk:
        if self._expert is None:
            raise RuntimeError("ScriptedPolicy.act before attach(robot)")
        if self.chunk_size == 1:
            actions = self._expert.act(self._robot.raw_observation())[None]
        else:
            actions = self._robot.lookahead(self._expert.act, self.chunk_size)
        return ActionChunk(actions, policy_version=self.version)


class RandomPolicy:
    """Uniform random actions in the robot's bounds (``scale`` shrinks them around the middle)."""

    def __init__(
        self, spec: RobotSpec | None = None, *, chunk_size: int = 8, scale: float = 1.0, seed: int = 0
    ) -> None:
        self.chunk_size, self.scale = int(chunk_size), float(scale)
        self.version = "random"
        self._rng = np.random.default_rng(seed)
        self.action_dim = 0
        if spec is not None:
            self._bind(spec)

    def _bind(self, spec: RobotSpec) -> None:
        low = np.asarray(spec.action_low, dtype=np.float64)
        high = np.asarray(spec.action_high, dtype=np.float64)
        mid, half = (low + high) / 2, (high - low) / 2 * self.scale
        self._low, self._high = mid - half, mid + half
        self.action_dim = spec.action_dim

    def attach(self, robot: Any) -> None:
        self._bind(robot.spec)

    def reset(self) -> None:
        pass

    def act(self, obs: Observation, temperature: float = 0.0) -> ActionChunk:
        if not self.action_dim:
            raise RuntimeError("RandomPolicy.act before attach(robot): the action bounds are unknown")
        actions = self._rng.uniform(self._low, self._high, size=(self.chunk_size, self.action_dim))
        return ActionChunk(actions.astype(np.float32), policy_version=self.version)


class ReplayPolicy:
    """The recorded actions of one episode, K at a time; ``PolicyExhausted`` once they are all sent."""

    def __init__(self, actions: np.ndarray, *, chunk_size: int = 8, version: str = "replay") -> None:
        self.actions = np.asarray(actions, dtype=np.float32)  # [T, A]
        if self.actions.ndim != 2 or len(self.actions) == 0:
            raise ValueError(f"replay needs actions [T, A] with T > 0, got shape {list(self.actions.shape)}")
        self.chunk_size, self.action_dim, self.version = int(chunk_size), int(self.actions.shape[1]), version
        self._cursor = 0

    @classmethod
    def from_store(cls, store: Any, episode_id: str, *, chunk_size: int = 8) -> ReplayPolicy:
        """Replay episode ``episode_id`` of a ``data_store.episodes.EpisodeStore``."""
        reader = store.open(episode_id)
        return cls(reader.actions(), chunk_size=chunk_size, version=f"replay:{episode_id}")

    def __len__(self) -> int:
        return len(self.actions)

    def attach(self, robot: Any) -> None:
        if robot.spec.action_dim != self.action_dim:
            raise ValueError(f"replay has {self.action_dim}-d actions, the robot takes {robot.spec.action_dim}-d")

    def reset(self) -> None:
        self._cursor = 0

    def act(self, obs: Observation, temperature: float = 0.0) -> ActionChunk:
        if self._cursor >= len(self.actions):
            raise PolicyExhausted(f"replayed all {len(self.actions)} actions")
        chunk = self.actions[self._cursor : self._cursor + self.chunk_size]
        self._cursor += len(chunk)
        return ActionChunk(chunk.copy(), policy_version=self.version)


POLICY_SPECS = ("scripted", "random", "replay:EPISODE_ID", "artifact:DIR", "lerobot:DIR", "DIR")


def load_policy(
    spec: str,
    *,
    robot: Any = None,
    store: Any = None,
    noise: float = 0.0,
    seed: int = 0,
    chunk_size: int | None = None,
) -> Policy:
    """The policy named by ``spec`` (see the module docstring). ``ValueError`` with the accepted forms."""
    spec = spec.strip()
    if spec == "scripted":
        return ScriptedPolicy(noise=noise, seed=seed, chunk_size=chunk_size or 1, robot=robot)
    if spec == "random":
        return RandomPolicy(robot.spec if robot is not None else None, chunk_size=chunk_size or 8, seed=seed)
    if spec.startswith("replay:"):
        if store is None:
            raise ValueError("replay needs an episode store (--store)")
        episode_id = spec.removeprefix("replay:")
        if episode_id not in store:
            raise ValueError(f"no episode {episode_id!r} in the store at {store.root}")
        return ReplayPolicy.from_store(store, episode_id, chunk_size=chunk_size or 8)
    if spec.startswith("lerobot:") or _is_lerobot_checkpoint(Path(spec).expanduser()):
        path = Path(spec.removeprefix("lerobot:")).expanduser()
        if not path.is_dir():
            raise ValueError(f"no LeRobot checkpoint folder at {path}")
        return _load_lerobot(path)
    path = Path(spec.removeprefix("artifact:")).expanduser()
    if path.is_dir():
        return _load_artifact(path)
    raise ValueError(f"unknown policy {spec!r}; expected one of: {', '.join(POLICY_SPECS)} (an existing directory)")


def _is_lerobot_checkpoint(path: Path) -> bool:
    """A folder that LeRobot's ``save_pretrained`` wrote: its ``config.json`` names a policy ``type``."""
    import json

    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "type" in config and "format" not in config


def _load_lerobot(path: Path) -> Policy:
    from data_store.optional import MissingDependency
    from vla.adapters.lerobot import LeRobotPolicy

    try:
        policy: Policy = LeRobotPolicy.from_pretrained(path)
    except MissingDependency as e:
        raise ValueError(str(e)) from None
    return policy


def _load_artifact(path: Path) -> Policy:
    try:
        from vla.artifact import load_artifact
    except ImportError as e:  # torch (the train extra) or the vla package is missing
        raise ValueError(
            f"cannot load the policy artifact {path}: {e}. Install the policy runtime with:\n"
            "    pip install -c constraints.txt 'vla-flywheel[train]'"
        ) from None
    from vla.manifest import ArtifactError

    try:
        policy: Policy = load_artifact(path)
    except (ArtifactError, OSError) as e:  # a user's folder that is not (or no longer) a whole artifact
        raise ValueError(f"{path} is not a policy artifact: {e}") from None
    return policy
