"""``SimRobot``: the simulated Meta-World arm behind the ``Robot`` interface (``make_robot("sim", ...)``).

Spaces are ``sim.env.MetaWorldArm``'s: one camera uint8 ``[H, W, 3]`` (default 64×64), state float32
``[4]`` (hand xyz, gripper opening), action float32 ``[4]`` in ``[-1, 1]`` (hand deltas, gripper effort).
It runs on the sim clock: each ``send_action`` is one 10 Hz tick and nothing sleeps; ``realtime=True``
asks the control loop to pace it on the wall clock like a physical arm (for benchmarks and rehearsal).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from data_store.schema import Observation, RobotSpec
from robot_agent.robots.base import Robot, register_robot


@register_robot("sim")
class SimRobot(Robot):
    """A Meta-World task as a robot. ``home(seed)`` resets the scene; ``success()`` is the simulator's."""

    safety_preset = "sim"  # robot_agent.safety.PRESETS entry the loop uses by default

    def __init__(
        self,
        task: str = "drawer-close",
        *,
        camera: str | None = None,
        image_size: tuple[int, int] | int = (64, 64),
        max_steps: int | None = None,
        seed: int = 0,
        instruction: str | None = None,
        realtime: bool = False,
    ) -> None:
        from sim.env import MetaWorldArm

        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        self.arm = MetaWorldArm(
            task, camera=camera, image_size=(int(size[0]), int(size[1])), max_steps=max_steps, seed=seed
        )
        self.arm.fixed_instruction = instruction
        self.needs_pacing = bool(realtime)  # the loop paces on the wall clock when True
        self._connected = False
        self._gripper = 0.0  # last gripper effort: hold() keeps it, so a grasp is not dropped

    # ---- Robot ------------------------------------------------------------------------------------
    @property
    def spec(self) -> RobotSpec:
        return self.arm.spec

    @property
    def task(self) -> Any:
        """The ``sim.tasks.TaskInfo`` this arm runs."""
        return self.arm.task

    @property
    def max_steps(self) -> int:
        return self.arm.max_steps

    @property
    def instruction(self) -> str:
        return self.arm.instruction

    @instruction.setter
    def instruction(self, text: str | None) -> None:
        """Fix the instruction of the next episodes (None: the seed picks one of the task's phrasings)."""
        self.arm.fixed_instruction = text
        if text:
            self.arm.instruction = text

    def connect(self) -> None:
        self._connected = True

    def home(self, seed: int | None = None) -> Observation:
        self._gripper = 0.0
        return self.arm.reset(seed)

    def observe(self) -> Observation:
        return self.arm.observe()

    def send_action(self, action: np.ndarray) -> None:
        action = np.asarray(action, dtype=np.float32)
        self._gripper = float(action[3])
        self.arm.step(action)

    def hold(self) -> None:
        self.send_action(np.array([0.0, 0.0, 0.0, self._gripper], dtype=np.float32))

    def success(self) -> bool:
        return self.arm.success()

    def disconnect(self) -> None:
        self._connected = False
        self.arm.close()

    # ---- what only a simulator has -------------------------------------------------------------
    @property
    def seed(self) -> int | None:
        """The seed of the current scene."""
        return self.arm.seed

    def lookahead(self, act: Callable[[np.ndarray], np.ndarray], steps: int) -> np.ndarray:
        """``sim.env.MetaWorldArm.lookahead``: a closed-loop controller's next ``steps`` actions, float32 ``[K, 4]``."""
        return self.arm.lookahead(act, steps)

    def raw_observation(self) -> np.ndarray:
        """Meta-World's state vector float64 ``[39]``, for the scripted expert (``ScriptedPolicy``)."""
        return self.arm.raw_observation()
