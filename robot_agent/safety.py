"""The safety filter between the policy and the arm: every action passes through it, on by default.

``SafetyFilter.filter(action, state=..., now=..., issued_at=...) -> Verdict``, in this order:

1. **e-stop**: once ``estop(reason)`` is called (from any thread) every action is refused and the episode
   stops; it stays latched, across episodes, until ``reset()``.
2. **non-finite**: an action with NaN or ±inf is refused; the episode stops and the reason is recorded.
3. **watchdog**: an action that is older than ``watchdog_s`` when it is due (the policy answered late,
   the loop stalled) is replaced by the hold action: the arm keeps its position.
4. **clamp** to the action limits (the robot's ``RobotSpec`` bounds, or tighter ones from the config).
5. **max delta**: each component changes by at most ``max_delta`` from the action sent before.
6. **workspace box** (delta-action arms): the commanded motion is cut where it would take the tool out
   of the box; motion back in is always allowed.

Shapes: action float32 ``[A]``; state float32 ``[S]``; the tool position is ``state[i:i+3]`` (metres)
with ``i = position_index``. Times are seconds on the loop's clock (the sim clock in simulation).

``action_kind`` says what "hold" is: ``"delta"`` (the sim: zero motion, gripper effort kept) or
``"absolute"`` (targets: repeat the last one sent). Physical arms add their own joint-space envelope on
top (``robot_agent.hardware_safety``); this filter is the robot-agnostic part.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from data_store.schema import RobotSpec


@dataclass(frozen=True)
class SafetyConfig:
    """What the filter enforces. ``SafetyConfig()`` is on; ``PRESETS["off"]`` disables all but the e-stop and
    the refusal of non-finite actions."""

    enabled: bool = True
    action_low: tuple[float, ...] | None = None  # None: the robot spec's bounds
    action_high: tuple[float, ...] | None = None
    max_delta: float | None = 1.0  # per component per step, in action units (1.0 = half of [-1, 1])
    watchdog_s: float = 0.5  # an action due longer than this after its observation is replaced by "hold"
    action_kind: Literal["delta", "absolute"] = "delta"
    keep_on_hold: tuple[int, ...] = ()  # delta arms: components held at their last value (the gripper)
    workspace_low: tuple[float, float, float] | None = None  # tool box, metres; None: no box
    workspace_high: tuple[float, float, float] | None = None
    position_index: int = 0  # tool position = state[position_index : position_index + 3]
    position_gain: float = 1.0  # metres of tool motion per action unit (delta arms)

    def __post_init__(self) -> None:
        if (self.workspace_low is None) != (self.workspace_high is None):
            raise ValueError("workspace_low and workspace_high go together")
        low, high = self.workspace_low, self.workspace_high
        if low is not None and high is not None and any(lo >= hi for lo, hi in zip(low, high, strict=True)):
            raise ValueError(f"workspace_low must be below workspace_high, got {low} / {high}")
        if self.max_delta is not None and self.max_delta <= 0:
            raise ValueError(f"max_delta must be > 0, got {self.max_delta}")
        if self.watchdog_s <= 0:
            raise ValueError(f"watchdog_s must be > 0, got {self.watchdog_s}")

    @classmethod
    def preset(cls, name: str) -> SafetyConfig:
        if name not in PRESETS:
            raise ValueError(f"unknown safety preset {name!r}; known: {', '.join(PRESETS)}")
        return PRESETS[name]


PRESETS: dict[str, SafetyConfig] = {
    "default": SafetyConfig(),
    # The Meta-World arm: actions are hand deltas of 1 cm per unit (SawyerXYZEnv.action_scale) and the
    # gripper effort (index 3) is kept on hold, so a held arm does not drop what it grasped. The box is
    # inside Meta-World's own mocap limits (hand_low/high of the tasks, x ±0.5, y 0.40..1.0, z 0.05..0.5)
    # with the table surface as the floor; the scripted experts never leave it.
    "sim": SafetyConfig(
        keep_on_hold=(3,),
        workspace_low=(-0.5, 0.35, 0.0),
        workspace_high=(0.5, 1.0, 0.5),
        position_gain=0.01,
    ),
    "off": SafetyConfig(enabled=False),
    # Arms commanded with absolute joint targets (robot_agent.robots.dds.TopicArm, LeRobot arms): hold
    # repeats the last target; the joint-space envelope is robot_agent.hardware_safety's.
    "joint-targets": SafetyConfig(action_kind="absolute", max_delta=None),
}


@dataclass(frozen=True)
class Verdict:
    """What the filter made of one action."""

    action: np.ndarray  # float32 [A]: what to send (the hold action when ``stop`` is set)
    events: tuple[str, ...] = ()  # what was changed: "watchdog", "clamped", "max_delta", "workspace"
    stop: str | None = None  # why the episode must stop (e-stop, non-finite action); None: go on


@dataclass
class SafetyFilter:
    """Stateful filter for one arm: remembers the last action sent and the e-stop latch. Thread-safe e-stop."""

    config: SafetyConfig
    spec: RobotSpec
    _last: np.ndarray | None = field(default=None, init=False, repr=False)
    _estop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _estop_reason: str = field(default="", init=False, repr=False)

    def __post_init__(self) -> None:
        a = self.spec.action_dim
        low = self.config.action_low if self.config.action_low is not None else self.spec.action_low
        high = self.config.action_high if self.config.action_high is not None else self.spec.action_high
        if len(low) != a or len(high) != a:
            raise ValueError(f"action limits: expected {a} values each, got {len(low)} and {len(high)}")
        self.low = np.asarray(low, dtype=np.float32)
        self.high = np.asarray(high, dtype=np.float32)
        if any(i >= a for i in self.config.keep_on_hold):
            raise ValueError(f"keep_on_hold {self.config.keep_on_hold} outside the action's {a} components")

    # ---- e-stop (any thread) -----------------------------------------------------------------------
    def estop(self, reason: str = "operator") -> None:
        """Latch the e-stop: every action is refused until ``reset()``."""
        self._estop_reason = reason
        self._estop.set()

    @property
    def estopped(self) -> bool:
        return self._estop.is_set()

    @property
    def estop_reason(self) -> str:
        return self._estop_reason

    def reset(self) -> None:
        """Release the e-stop and forget the last action (the operator has checked the arm)."""
        self._estop.clear()
        self._estop_reason = ""
        self._last = None

    def begin_episode(self) -> None:
        """Forget the last action: the arm was homed, the rate limit starts afresh. The e-stop stays."""
        self._last = None

    # ---- the filter (control-loop thread) ------------------------------------------------------------
    def hold_action(self) -> np.ndarray:
        """The action that keeps the arm where it is, float32 ``[A]``."""
        a = self.spec.action_dim
        if self.config.action_kind == "absolute":
            return self._last.copy() if self._last is not None else np.zeros(a, dtype=np.float32)
        hold = np.zeros(a, dtype=np.float32)
        if self._last is not None:
            for i in self.config.keep_on_hold:
                hold[i] = self._last[i]
        return hold

    def filter(self, action: np.ndarray, *, state: np.ndarray, now: float = 0.0, issued_at: float = 0.0) -> Verdict:
        """Make ``action`` (float32 ``[A]``, due at ``now``, computed from an observation at ``issued_at``) safe."""
        action = np.asarray(action, dtype=np.float32).reshape(-1)
        if action.shape != (self.spec.action_dim,):
            return Verdict(
                self.hold_action(), stop=f"action shape {list(action.shape)}, expected [{self.spec.action_dim}]"
            )
        if not np.all(np.isfinite(action)):  # refused even with the filter off: no arm wants a NaN
            bad = [i for i in range(action.size) if not np.isfinite(action[i])]
            return Verdict(self.hold_action(), stop=f"non-finite action at components {bad}: {action.tolist()}")
        if self._estop.is_set():  # latched, even with the filter off
            return Verdict(self.hold_action(), stop=f"e-stop: {self._estop_reason}")
        if not self.config.enabled:
            self._last = action.copy()
            return Verdict(action)
        events: list[str] = []
        if now - issued_at > self.config.watchdog_s:
            out = self.hold_action()
            events.append("watchdog")
        else:
            out = np.clip(action, self.low, self.high)
            if not np.array_equal(out, action):
                events.append("clamped")
            if self.config.max_delta is not None and self._last is not None:
                limited = np.clip(out, self._last - self.config.max_delta, self._last + self.config.max_delta)
                if not np.array_equal(limited, out):
                    events.append("max_delta")
                out = limited
        if self.config.workspace_low is not None and self.config.action_kind == "delta":
            boxed = self._inside_box(out, state)
            if not np.array_equal(boxed, out):
                events.append("workspace")
            out = boxed
        out = out.astype(np.float32)
        self._last = out.copy()
        return Verdict(out, tuple(events))

    def _inside_box(self, action: np.ndarray, state: np.ndarray) -> np.ndarray:
        """Cut the xyz motion so the tool ends inside the box; motion towards the box is never cut."""
        assert self.config.workspace_low is not None and self.config.workspace_high is not None
        i, gain = self.config.position_index, self.config.position_gain
        pos = np.asarray(state, dtype=np.float64)[i : i + 3]
        low = np.asarray(self.config.workspace_low, dtype=np.float64)
        high = np.asarray(self.config.workspace_high, dtype=np.float64)
        most = np.maximum((high - pos) / gain, 0.0)  # the largest step that stays below the ceiling
        least = np.minimum((low - pos) / gain, 0.0)
        out = action.astype(np.float64).copy()
        out[:3] = np.clip(out[:3], least, most)
        return out.astype(np.float32)


def make_filter(safety: SafetyConfig | SafetyFilter | None, spec: RobotSpec, preset: str = "default") -> SafetyFilter:
    """A filter for ``spec``: the one given, a new one for the given config, or the robot's preset."""
    if isinstance(safety, SafetyFilter):
        return safety
    config = safety if safety is not None else SafetyConfig.preset(preset)
    return SafetyFilter(config, spec)
