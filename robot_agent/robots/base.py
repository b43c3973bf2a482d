"""The ``Robot`` interface: what the control loop asks of any arm, simulated or physical.

A backend is one module under ``robot_agent/robots/`` that subclasses ``Robot`` and registers itself
with ``@register_robot("name")``. Hardware libraries (rclpy, lerobot, ...) are imported inside the
backend module only; a missing one raises ``MissingDependency`` with the exact install command.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from data_store.schema import Observation, RobotSpec


class RobotFault(RuntimeError):
    """The robot cannot go on (no driver answers, a fault reported by the hardware). The message says why."""


class Robot(ABC):
    """One arm with its cameras. Every method is called from the control-loop thread only."""

    name: ClassVar[str] = "robot"
    # What the control loop asks of a robot besides its methods (robot_agent/loop.py):
    needs_pacing: bool = False  # True: the loop paces steps on the wall clock (send_action does not keep the rate)
    safety_preset: str = "default"  # the robot_agent.safety.PRESETS entry the loop's filter starts from

    @property
    def max_steps(self) -> int | None:
        """An episode's step limit when the robot knows one (a simulated task's); None: the loop's default."""
        return None

    @property
    @abstractmethod
    def spec(self) -> RobotSpec:
        """Cameras, proprio size and action space of this robot."""

    @abstractmethod
    def connect(self) -> None:
        """Open the connection to the hardware (or start the simulator)."""

    @abstractmethod
    def home(self, seed: int | None = None) -> Observation:
        """Move to the start pose of an episode and return the first observation.

        A simulator resets its scene here (seeded when ``seed`` is given)."""

    @abstractmethod
    def observe(self) -> Observation:
        """The current observation."""

    @abstractmethod
    def send_action(self, action: np.ndarray) -> None:
        """Execute one action, float32 ``[A]``, already passed through the safety filter.

        A simulator advances its clock by one control tick here."""

    def hold(self) -> None:
        """Keep the current position (watchdog, e-stop). Default: a zero action where zero means 'stay'."""
        self.send_action(np.zeros(self.spec.action_dim, dtype=np.float32))

    def success(self) -> bool | None:
        """Whether the task is done, when the robot can tell (a simulator can); None when it cannot."""
        return None

    @abstractmethod
    def disconnect(self) -> None:
        """Release the hardware. Safe to call twice."""

    def __enter__(self) -> Robot:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()


_ROBOTS: dict[str, type[Robot]] = {}  # filled by @register_robot, and only by it
# The shipped backends' modules, imported when a robot is first asked for (their decorators register them). Each
# imports its hardware library only when it connects, so importing all of them costs no SDK.
BACKEND_MODULES = ("robot_agent.robots.sim", "robot_agent.robots.dds", "robot_agent.robots.lerobot_arm")


def register_robot(name: str) -> Callable[[type[Robot]], type[Robot]]:
    """Class decorator: the backend is ``make_robot(name)`` from now on (a third-party module that is imported
    registers the same way)."""

    def wrap(cls: type[Robot]) -> type[Robot]:
        _ROBOTS[name] = cls
        cls.name = name
        return cls

    return wrap


def _import_backends() -> None:
    for module in BACKEND_MODULES:
        importlib.import_module(module)


def robot_names() -> list[str]:
    _import_backends()
    return sorted(_ROBOTS)


def make_robot(name: str, **kwargs: Any) -> Robot:
    """Build the robot backend registered as ``name``. Unknown names list the known ones."""
    _import_backends()
    if name not in _ROBOTS:
        raise ValueError(f"unknown robot {name!r}; known: {', '.join(robot_names())}")
    return _ROBOTS[name](**kwargs)
