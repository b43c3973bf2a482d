"""Any LeRobot robot (SO-101, SO-100, Koch, ...) as a ``Robot``: ``make_robot("lerobot", robot_type="so101_follower",
port="/dev/ttyACM0")``.

LeRobot's own ``Robot`` already speaks in features: ``observation_features`` maps each motor key
(``"shoulder_pan.pos"``) to ``float`` and each camera to its ``(H, W, 3)`` shape; ``action_features``
maps motor keys to ``float``. This adapter fixes an order once, at construction:

- state float32 ``[S]`` = the float observation features in their declared order;
- action float32 ``[A]`` = the action features in their declared order (absolute motor targets in
  LeRobot's units: -100…100 for joints in its default normalisation, 0…100 for the gripper, or
  degrees when the robot is configured so);
- images ``{camera: uint8 [H, W, 3]}`` = the tuple-shaped observation features.

Safety: every target passes ``HardwareSafety`` (joint names = action keys without ``.pos``) when
``limits`` is given. Feetech/Dynamixel servos in position mode hold their last goal by themselves,
so a stalled agent leaves the arm holding (the driver-side timeout of a ros2_control arm comes for
free here); ``disconnect`` drives home first when the limits say so.

lerobot >= 0.5 needs Python >= 3.12; on Python 3.11 lerobot 0.4.4 runs in a venv of its own
(``scripts/setup_lerobot.sh``), where the test command checks this backend against lerobot's real SO-101 follower
(``tests/against_lerobot``). Without lerobot, ``MissingDependency`` carries the install line.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pkgutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from data_store.optional import MissingDependency
from data_store.schema import Observation, RobotSpec
from robot_agent.hardware_safety import HardwareSafety, load_limits
from robot_agent.robots.base import Robot, register_robot

INSTALL = (
    "pip install 'lerobot[feetech]>=0.5'   # needs Python >= 3.12; or: pip install 'vla-flywheel[lerobot]'\n"
    "    on Python 3.11: bash scripts/setup_lerobot.sh   # lerobot 0.4.4 in .venv-lerobot (docs/hardware.md)"
)


def make_lerobot_robot(robot_type: str, **config: Any) -> Any:
    """Build a lerobot Robot from its registered config type (``so101_follower``, ``koch_follower``, ...)."""
    try:
        import lerobot.robots
        from lerobot.robots import RobotConfig, make_robot_from_config
    except ImportError as e:
        raise MissingDependency("lerobot", INSTALL) from e
    # A robot's config type is registered when its module is imported (lerobot's own scripts import them all);
    # a module whose SDK is missing (e.g. a robot with an extra of its own) cannot register and is left out.
    for module in pkgutil.iter_modules(lerobot.robots.__path__):
        if module.ispkg:
            with contextlib.suppress(Exception):
                importlib.import_module(f"lerobot.robots.{module.name}")
    try:
        config_cls = RobotConfig.get_choice_class(robot_type)
    except KeyError:
        known = ", ".join(sorted(RobotConfig.get_known_choices()))
        raise ValueError(f"unknown lerobot robot type {robot_type!r}; known: {known}") from None
    return make_robot_from_config(config_cls(**config))


CONFIG_ENV = "FLYWHEEL_LEROBOT_CONFIG"  # YAML for ``flywheel robot run --robot lerobot`` (see ``load_lerobot_config``)


def load_lerobot_config(path: str | Path) -> dict[str, Any]:
    """``LeRobotArm`` keyword arguments from YAML::

    robot_type: so101_follower
    fps: 30
    limits: so101_limits.yaml        # relative to this file
    config: {port: /dev/ttyACM0, id: my_arm}   # the lerobot robot config's fields
    """
    import yaml

    path = Path(path)
    data = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(set(data) - {"robot_type", "fps", "limits", "instruction", "config"})
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; known: robot_type, fps, limits, instruction, config")
    kwargs = {k: v for k, v in data.items() if k != "config"}
    if "limits" in kwargs:
        kwargs["limits"] = str((path.parent / str(kwargs["limits"])).resolve())
    return {**kwargs, **(data.get("config") or {})}


@register_robot("lerobot")
class LeRobotArm(Robot):
    needs_pacing = False  # send_action keeps the rate itself
    safety_preset = "joint-targets"  # absolute motor targets: hold repeats the last one

    def __init__(
        self,
        robot_type: str = "so101_follower",
        *,
        instruction: str = "",
        fps: float = 30.0,
        limits: str | None = None,
        lerobot_robot: Any = None,
        **config: Any,
    ) -> None:
        """``config`` goes to the lerobot robot config (``port``, ``id``, ``cameras``, ...);
        ``lerobot_robot`` passes a ready lerobot Robot instead; ``limits`` is a YAML path. With neither,
        $FLYWHEEL_LEROBOT_CONFIG names a YAML with all of them (``load_lerobot_config``)."""
        if lerobot_robot is None and not config and os.environ.get(CONFIG_ENV):
            loaded = load_lerobot_config(os.environ[CONFIG_ENV])
            robot_type = loaded.pop("robot_type", robot_type)
            fps, limits = float(loaded.pop("fps", fps)), loaded.pop("limits", limits)
            instruction = loaded.pop("instruction", instruction)
            config = loaded
        self._robot = lerobot_robot if lerobot_robot is not None else make_lerobot_robot(robot_type, **config)
        self.instruction = instruction
        self.fps = fps
        obs_features = dict(self._robot.observation_features)
        self.state_keys = tuple(k for k, v in obs_features.items() if v is float)
        self.camera_shapes = {k: tuple(v) for k, v in obs_features.items() if isinstance(v, tuple)}
        self.action_keys = tuple(dict(self._robot.action_features))
        self.safety: HardwareSafety | None = None
        if limits is not None:
            lim = load_limits(limits)
            expected = tuple(k.removesuffix(".pos") for k in self.action_keys)
            if tuple(lim.joint_names) != expected:
                raise ValueError(f"limits are for joints {lim.joint_names}, the robot's actions are {expected}")
            self.safety = HardwareSafety(lim)
        self._connected = False
        self._next_tick = 0.0

    @property
    def spec(self) -> RobotSpec:
        if self.safety is not None:
            low, high = self.safety.limits.position_min, self.safety.limits.position_max
        else:  # lerobot's default motor normalisation: joints -100..100, gripper 0..100
            low = tuple(0.0 if "gripper" in k else -100.0 for k in self.action_keys)
            high = tuple(100.0 for _ in self.action_keys)
        return RobotSpec(
            action_dim=len(self.action_keys),
            state_dim=len(self.state_keys),
            action_low=tuple(low),
            action_high=tuple(high),
            cameras={k: (int(s[0]), int(s[1])) for k, s in self.camera_shapes.items()},
            fps=self.fps,
            action_names=self.action_keys,
            state_names=self.state_keys,
        )

    def connect(self) -> None:
        if not self._connected:
            self._robot.connect()
            self._connected = True
            self._next_tick = time.monotonic()

    def observe(self) -> Observation:
        raw = self._robot.get_observation()
        state = np.array([raw[k] for k in self.state_keys], dtype=np.float32)
        images = {k: np.ascontiguousarray(raw[k], dtype=np.uint8) for k in self.camera_shapes}
        return Observation(images=images, state=state, instruction=self.instruction, timestamp=time.time())

    def _positions(self) -> np.ndarray:
        raw = self._robot.get_observation()
        return np.array([raw[k] for k in self.action_keys], dtype=np.float32)

    def send_action(self, action: np.ndarray) -> None:
        """Filter (with ``limits``), send, keep the rate. Like ``TopicArm``, the command sent is written back
        into a writable float32 ``action`` so the recorder stores what the motors were told."""
        target = np.asarray(action, dtype=np.float32)
        if self.safety is not None:
            target = self.safety.filter(self._positions(), target, 1.0 / self.fps).command
            if isinstance(action, np.ndarray) and action.dtype == np.float32 and action.flags.writeable:
                action[:] = target
        self._robot.send_action({k: float(v) for k, v in zip(self.action_keys, target, strict=True)})
        self._next_tick = max(self._next_tick + 1.0 / self.fps, time.monotonic())
        time.sleep(max(0.0, self._next_tick - time.monotonic()))

    def hold(self) -> None:
        self.send_action(self._positions())

    def home(self, seed: int | None = None) -> Observation:
        if self.safety is not None:
            self.safety.forget()
            for waypoint in self.safety.path_home(self._positions(), 1.0 / self.fps):
                self.send_action(waypoint)
        return self.observe()

    def disconnect(self) -> None:
        if not self._connected:
            return
        try:
            if self.safety is not None and self.safety.limits.home_on_shutdown and not self.safety.estopped:
                self.home()
        finally:
            self._connected = False
            self._robot.disconnect()
