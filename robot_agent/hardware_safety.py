"""Safety on a physical arm: joint position and velocity limits, a workspace box, a latching e-stop, and
the path home on shutdown. Limits come from YAML (validated by pydantic) or a named preset.

Where each guard lives:

- here, on the agent side, every command is filtered before it goes on the wire (``filter``): clamp to
  the joint position limits, cap the change per control tick at ``max_velocity × dt`` around the previous
  command (and within three such steps of the measured joints, so a lagging arm is not run away from),
  and shorten the step so the tool stays in the workspace box (bisection along the joint-space segment;
  the box needs forward kinematics, which the robot backend supplies);
- the e-stop latches: once engaged every command becomes "hold where you are" until an explicit
  ``reset``; the robot backend also tells its driver (the fake driver and the ROS node latch too);
- the command timeout belongs to the driver (``command_timeout_s`` is handed to it): if the agent dies or
  stalls, the driver holds on its own. ``robot_agent.transports.fake_driver`` implements it; on a
  ros2_control arm it is the controller's own timeout (e.g. JointTrajectoryController's
  ``cmd_timeout``), set from the same number;
- on shutdown the backend drives ``path_home`` (rate-limited waypoints) before it lets go.

Shapes: joint vectors float32 ``[N]`` in ``joint_names`` order; tool positions float ``[3]`` metres in
the robot base frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

ForwardKinematics = Callable[[np.ndarray], np.ndarray]  # joints float [N] -> tool (x, y, z) float [3]


class WorkspaceBox(BaseModel):
    """Axis-aligned box the tool must stay in, metres in the robot base frame."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    min: tuple[float, float, float]
    max: tuple[float, float, float]

    @model_validator(mode="after")
    def _ordered(self) -> WorkspaceBox:
        if any(lo >= hi for lo, hi in zip(self.min, self.max, strict=True)):
            raise ValueError(f"workspace.min must be below workspace.max on every axis, got {self.min} / {self.max}")
        return self

    def contains(self, p: np.ndarray, margin: float = 1e-9) -> bool:
        return bool(np.all(p >= np.array(self.min) - margin) and np.all(p <= np.array(self.max) + margin))


class HardwareLimits(BaseModel):
    """The safety envelope of one arm. Lengths of every per-joint list equal ``len(joint_names)``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    joint_names: tuple[str, ...]
    position_min: tuple[float, ...]
    position_max: tuple[float, ...]
    max_velocity: tuple[float, ...]  # per joint, units/s (rad/s for revolute joints)
    home: tuple[float, ...]
    workspace: WorkspaceBox | None = None
    command_timeout_s: float = Field(0.25, gt=0)  # handed to the driver: hold when commands go stale
    home_on_shutdown: bool = True
    home_tolerance: float = Field(0.02, gt=0)  # max |q - home| that counts as home

    @model_validator(mode="after")
    def _consistent(self) -> HardwareLimits:
        n = len(self.joint_names)
        for name in ("position_min", "position_max", "max_velocity", "home"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name}: expected {n} values (one per joint), got {len(getattr(self, name))}")
        lo, hi = np.array(self.position_min), np.array(self.position_max)
        if np.any(lo >= hi):
            raise ValueError("position_min must be below position_max for every joint")
        if np.any(np.array(self.max_velocity) <= 0):
            raise ValueError("max_velocity must be positive for every joint")
        home = np.array(self.home)
        if np.any(home < lo) or np.any(home > hi):
            raise ValueError(f"home {self.home} is outside the joint position limits")
        return self


def load_limits(path: str | Path) -> HardwareLimits:
    """Limits from a YAML file: the mapping itself, or under a ``hardware_limits`` key."""
    import yaml

    data: Any = yaml.safe_load(Path(path).read_text())
    if isinstance(data, dict) and "hardware_limits" in data:
        data = data["hardware_limits"]
    return HardwareLimits.model_validate(data)


def fake_arm_limits() -> HardwareLimits:
    """The preset for ``transports.kinematic_arm.PlanarArm``: its limits, and a box above the table."""
    from robot_agent.transports.kinematic_arm import PlanarArm

    arm = PlanarArm()
    return HardwareLimits(
        joint_names=arm.joint_names,
        position_min=arm.position_min,
        position_max=arm.position_max,
        max_velocity=tuple(0.8 * v for v in arm.max_velocity),  # agent stays under the driver's limits
        home=arm.home,
        workspace=WorkspaceBox(min=(-0.6, -0.1, 0.02), max=(0.6, 0.1, 0.75)),
        command_timeout_s=0.25,
        home_tolerance=0.02,
    )


PRESETS: dict[str, Callable[[], HardwareLimits]] = {"fake-arm": fake_arm_limits}


@dataclass(frozen=True)
class Verdict:
    """What the filter sent and why it changed the request (empty ``clipped`` = passed unchanged)."""

    command: np.ndarray  # float32 [N]
    clipped: tuple[str, ...]  # subset of ("estop", "position", "velocity", "workspace")


class HardwareSafety:
    """Filters joint targets against ``HardwareLimits``; holds a latching e-stop."""

    def __init__(self, limits: HardwareLimits, fk: ForwardKinematics | None = None) -> None:
        if limits.workspace is not None and fk is None:
            raise ValueError("a workspace box needs the robot's forward kinematics (fk)")
        self.limits = limits
        self.fk = fk
        self._lo = np.array(limits.position_min)
        self._hi = np.array(limits.position_max)
        self._vmax = np.array(limits.max_velocity)
        self.estopped = False
        self.estop_reason = ""
        self.counts: dict[str, int] = {"estop": 0, "position": 0, "velocity": 0, "workspace": 0}
        self._last: np.ndarray | None = None  # the previous command, float64 [N]

    # ---- e-stop --------------------------------------------------------------------------------
    def estop(self, reason: str = "operator") -> None:
        """Latch: every later command holds the current position until ``reset``."""
        if not self.estopped:
            self.estopped, self.estop_reason = True, reason

    def reset(self) -> None:
        """Release the latch (an operator's explicit act)."""
        self.estopped, self.estop_reason = False, ""
        self._last = None

    # ---- filtering -----------------------------------------------------------------------------
    def filter(self, q_now: np.ndarray, target: np.ndarray, dt: float) -> Verdict:
        """The command to send for ``target`` given the measured ``q_now``, one control tick ``dt`` ahead."""
        q_now = np.asarray(q_now, dtype=np.float64)
        target = np.asarray(target, dtype=np.float64)
        if target.shape != q_now.shape or target.shape[0] != len(self.limits.joint_names):
            raise ValueError(f"target: expected shape [{len(self.limits.joint_names)}], got {list(target.shape)}")
        if self.estopped:
            self._last = None
            return self._verdict(q_now, ("estop",))
        clipped: list[str] = []
        if not np.all(np.isfinite(target)):
            target = np.where(np.isfinite(target), target, q_now)
            clipped.append("position")
        cmd = np.clip(target, self._lo, self._hi)
        if not np.array_equal(cmd, target):
            clipped.append("position")
        step = self._vmax * dt
        # Rate-limit the command stream (around the previous command), and keep it within three ticks of
        # motion of the measured joints (a driver that lags, or a first command, is limited around them).
        ref = self._last if self._last is not None else q_now
        limited = np.clip(np.clip(cmd, ref - step, ref + step), q_now - 3 * step, q_now + 3 * step)
        if not np.allclose(limited, cmd, rtol=0, atol=1e-9):
            clipped.append("velocity")
        cmd = limited
        if self.limits.workspace is not None and self.fk is not None:
            inside = self._inside_fraction(q_now, cmd)
            if inside < 1.0:
                cmd = q_now + inside * (cmd - q_now)
                clipped.append("workspace")
        return self._verdict(cmd, tuple(dict.fromkeys(clipped)))

    def _inside_fraction(self, q_now: np.ndarray, cmd: np.ndarray) -> float:
        """Largest s in [0, 1] with the tool inside the box along q_now + s (cmd - q_now) (bisection)."""
        box, fk = self.limits.workspace, self.fk
        assert box is not None and fk is not None
        if box.contains(fk(cmd)):
            return 1.0
        if not box.contains(fk(q_now)):
            # Already outside (started there, or the box was tightened): allow only moves that get closer.
            return 1.0 if _box_distance(box, fk(cmd)) < _box_distance(box, fk(q_now)) else 0.0
        lo, hi = 0.0, 1.0
        for _ in range(20):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if box.contains(fk(q_now + mid * (cmd - q_now))) else (lo, mid)
        return lo

    def _verdict(self, cmd: np.ndarray, clipped: tuple[str, ...]) -> Verdict:
        for c in clipped:
            self.counts[c] += 1
        if "estop" not in clipped:
            self._last = cmd.copy()
        return Verdict(command=cmd.astype(np.float32), clipped=clipped)

    def forget(self) -> None:
        """Drop the previous command (the arm was homed or held): the next one is limited around the joints."""
        self._last = None

    # ---- home ----------------------------------------------------------------------------------
    def path_home(self, q_now: np.ndarray, dt: float) -> list[np.ndarray]:
        """Waypoints, one per control tick, from ``q_now`` to home within the velocity limits (float32 [N])."""
        q = np.asarray(q_now, dtype=np.float64)
        home = np.array(self.limits.home)
        steps = int(np.ceil(np.max(np.abs(home - q) / (self._vmax * dt)))) if dt > 0 else 1
        return [(q + (home - q) * (i / max(steps, 1))).astype(np.float32) for i in range(1, max(steps, 1) + 1)]

    def at_home(self, q: np.ndarray) -> bool:
        return bool(np.max(np.abs(np.asarray(q) - np.array(self.limits.home))) <= self.limits.home_tolerance)


def _box_distance(box: WorkspaceBox, p: np.ndarray) -> float:
    below = np.maximum(np.array(box.min) - p, 0.0)
    above = np.maximum(p - np.array(box.max), 0.0)
    return float(np.linalg.norm(below + above))
