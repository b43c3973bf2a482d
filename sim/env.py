"""``MetaWorldArm``: a Meta-World v3 task as a robot with one camera, proprio and seeded resets.

Shapes at the boundary:

- ``Observation.images[camera]``: uint8 ``[H, W, 3]``, upright (default 64×64).
- ``Observation.state``: float32 ``[4]`` = hand x, y, z (metres) and gripper opening (0 closed .. 1 open).
- action: float32 ``[4]`` in ``[-1, 1]`` = hand dx, dy, dz (×1 cm, Meta-World's ``action_scale``) and
  gripper effort (+1 closes).
- ``raw_observation()``: float64 ``[39]``, Meta-World's own vector (hand, gripper, objects, previous
  frame, goal); what the scripted experts read.

How this departs from plain ``gym.make("Meta-World/MT1", ...)``:

- **Seeding.** MT1 draws 50 fixed task variations (object and goal positions) from its constructor seed
  and picks one at random on each reset from the env's RNG; ``reset(seed=...)`` is ignored by
  ``SawyerXYZEnv``. So equal seeds do not give equal scenes and there are only 50 scenes. Here the
  variation is drawn from the task's own random-reset range (the distribution MT1 samples its 50 from)
  with the episode seed: ``reset(seed)`` is deterministic (same scene, same first frame) and different
  seeds give different scenes.
- **Stepping.** The env is built through gymnasium's ``Meta-World/MT1`` registration (which sets the
  task and the multi-task override that puts the goal in the raw vector), then stepped on the base env:
  our seeding replaces the task-sampling wrapper, and the loop enforces ``max_steps`` itself.
- **Images.** The ``corner*`` cameras are rolled 180° in Meta-World's XML (their up vector points
  down), so frames of any camera whose up vector points below the horizon are rotated 180° (not
  mirrored: a camera never mirrors). Rendered by ``mujoco.Renderer`` without shadows, multisampling or
  reflections (7 ms instead of 21 ms a frame on one CPU core, see ``_fast_renderer``). The task's field
  of view may be narrowed (``TaskInfo.fovy``).
- **Clock.** One ``step`` is one control tick of the sim clock, ``1 / fps`` seconds (10 Hz), whatever
  Meta-World's physics time per step (12.5 ms): recorded episodes share the time base of a real robot.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from data_store.schema import DEFAULT_FPS, Observation, RobotSpec
from sim.tasks import TaskInfo, resolve_task

CAMERAS = ("corner", "corner2", "corner3", "corner4", "topview", "behindGripper", "gripperPOV")

ACTION_NAMES = ("hand_dx", "hand_dy", "hand_dz", "gripper_effort")
STATE_NAMES = ("hand_x", "hand_y", "hand_z", "gripper_opening")


class MetaWorldArm:
    """One Meta-World v3 task: ``reset(seed) -> Observation``, ``step(action) -> Observation``, ``success()``.

    ``instruction``: a fixed instruction; None lets the episode seed pick one of the task's phrasings.
    ``max_steps``: episode length (``None``: the task's default); ``truncated`` says when it is reached.
    ``seed``: seeds the sequence of scenes that ``reset()`` without a seed walks through.
    """

    def __init__(
        self,
        task: str | TaskInfo,
        camera: str | None = None,
        image_size: tuple[int, int] = (64, 64),
        max_steps: int | None = None,
        seed: int = 0,
        fovy: float | None = None,
        instruction: str | None = None,
        fps: float = DEFAULT_FPS,
    ) -> None:
        os.environ.setdefault("MUJOCO_GL", "egl")
        import gymnasium as gym
        import metaworld  # noqa: F401  (registers the Meta-World/* gymnasium ids)
        import mujoco

        self.task = task if isinstance(task, TaskInfo) else resolve_task(task)
        self.camera = camera or self.task.camera
        if self.camera not in CAMERAS:
            raise ValueError(f"unknown camera {self.camera!r}; known: {', '.join(CAMERAS)}")
        self.image_size = (int(image_size[0]), int(image_size[1]))  # (H, W)
        self.max_steps = int(max_steps or self.task.max_steps)
        self.fixed_instruction = instruction
        self.fps = float(fps)
        self._seeds = np.random.default_rng(seed)

        height, width = self.image_size
        self._gym_env = gym.make(
            "Meta-World/MT1",
            env_name=self.task.env_name,
            seed=seed,
            render_mode="rgb_array",
            camera_name=self.camera,
            width=width,
            height=height,
            disable_env_checker=True,
        )
        env: Any = self._gym_env.unwrapped
        self._env = env
        # Set the task once (goal-observable MT override), then draw each scene from our own seed.
        env.set_task(_task_select_wrapper(self._gym_env).tasks[0])
        env.max_path_length = 10**9  # never let Meta-World raise at its 500-step horizon
        self._cam_id = mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_CAMERA, self.camera)
        # the task's field of view goes with the task's camera; another camera keeps its own
        view_fovy = fovy if fovy is not None else (self.task.fovy if self.camera == self.task.camera else None)
        if view_fovy is not None:
            env.model.cam_fovy[self._cam_id] = float(view_fovy)
        self._renderer = _fast_renderer(env.model, height, width)
        self._rotate: bool | None = None  # decided at the first render, from the camera's pose
        self.steps = 0
        self.seed: int | None = None
        self.instruction = self.fixed_instruction or self.task.instruction
        self._raw = np.zeros(39, dtype=np.float64)
        self._success = False
        self._ever_succeeded = False
        self._obs: Observation | None = None
        self._stale = False  # advanced since the last render
        self._closed = False

    # ---------------------------------------------------------------- the robot's view of the sim
    @property
    def spec(self) -> RobotSpec:
        return RobotSpec(
            action_dim=4,
            state_dim=4,
            action_low=(-1.0,) * 4,
            action_high=(1.0,) * 4,
            cameras={self.camera: self.image_size},
            fps=self.fps,
            action_names=ACTION_NAMES,
            state_names=STATE_NAMES,
        )

    def reset(self, seed: int | None = None) -> Observation:
        """Start an episode in the scene of ``seed`` (None: the next seed of the constructor's sequence)."""
        if seed is None:
            seed = int(self._seeds.integers(0, 2**31 - 1))
        env = self._env
        env._freeze_rand_vec = False  # draw the object/goal positions ...
        env.seeded_rand_vec = True  # ... from env.np_random, which env.seed() seeds
        env.seed(int(seed))
        raw, _ = env.reset()
        self.seed = int(seed)
        self.steps = 0
        self.instruction = self.fixed_instruction or self.task.instruction_for(int(seed))
        self._raw = np.asarray(raw, dtype=np.float64)
        self._success = False
        self._ever_succeeded = False
        self._obs = self._observation()
        self._stale = False
        return self._obs

    def step(self, action: np.ndarray) -> Observation:
        """Apply one action, float32 ``[4]`` (clipped to ``[-1, 1]``), and advance one control tick."""
        self.advance(action)
        return self.observe()

    def advance(self, action: np.ndarray) -> None:
        """``step`` without the observation: the camera renders only when ``observe`` asks for the frame.

        Rendering is ~90% of a tick's CPU time (7 ms of 8 at 64×64), and a policy that acts in chunks of K
        looks at one frame in K: an evaluation that records nothing renders K times less."""
        if self._obs is None:
            raise RuntimeError("MetaWorldArm.step before reset")
        action = np.clip(np.asarray(action, dtype=np.float32).reshape(4), -1.0, 1.0)
        raw, _reward, _terminated, _truncated, info = self._env.step(action)
        self.steps += 1
        self._raw = np.asarray(raw, dtype=np.float64)
        self._success = bool(info.get("success", 0.0))
        self._ever_succeeded = self._ever_succeeded or self._success
        self._stale = True

    def observe(self) -> Observation:
        if self._obs is None:
            raise RuntimeError("MetaWorldArm.observe before reset")
        if self._stale:
            self._obs = self._observation()
            self._stale = False
        return self._obs

    def success(self) -> bool:
        """The simulator's success flag for the current state (Meta-World ``info["success"]``)."""
        return self._success

    @property
    def ever_succeeded(self) -> bool:
        """Whether the success flag was set at any step of this episode."""
        return self._ever_succeeded

    @property
    def truncated(self) -> bool:
        return self.steps >= self.max_steps

    def raw_observation(self) -> np.ndarray:
        """Meta-World's observation vector, float64 ``[39]`` (for the scripted experts)."""
        return self._raw.copy()

    def lookahead(self, act: Callable[[np.ndarray], np.ndarray], steps: int) -> np.ndarray:
        """Run ``act`` (raw observation float64 ``[39]`` -> action ``[4]``) ``steps`` ticks ahead, physics only,
        then put the simulator back exactly where it was. Returns the actions, float32 ``[steps, 4]``.

        This is how a closed-loop controller (the scripted expert) produces an open-loop action chunk:
        MuJoCo is deterministic, so executing the chunk reproduces the looked-ahead trajectory.
        """
        import mujoco

        env = self._env
        kind = mujoco.mjtState.mjSTATE_INTEGRATION  # qpos, qvel, act, warm start, ctrl, mocap: all that steps
        saved = np.empty(mujoco.mj_stateSize(env.model, kind))
        mujoco.mj_getState(env.model, env.data, saved, kind)
        python_side = (env.curr_path_length, env._prev_obs, env._last_stable_obs)
        raw, actions = self._raw, []
        try:
            for _ in range(steps):
                action = np.clip(np.asarray(act(raw), dtype=np.float32).reshape(4), -1.0, 1.0)
                actions.append(action)
                raw = np.asarray(env.step(action)[0], dtype=np.float64)
        finally:
            mujoco.mj_setState(env.model, env.data, saved, kind)
            mujoco.mj_forward(env.model, env.data)
            env.curr_path_length, env._prev_obs, env._last_stable_obs = python_side
        return np.stack(actions)

    def render(self) -> np.ndarray:
        """The camera's current frame, uint8 ``[H, W, 3]``, upright (world up is image up)."""
        self._renderer.update_scene(self._env.data, camera=self._cam_id)
        frame = self._renderer.render()
        if self._rotate is None:
            self._rotate = camera_is_rolled(self._env.data.cam_xmat[self._cam_id])
        if self._rotate:
            frame = frame[::-1, ::-1]
        return np.ascontiguousarray(frame, dtype=np.uint8)

    def close(self) -> None:
        """Free the renderer (its EGL context). Safe to call twice."""
        if not self._closed:
            self._closed = True
            self._renderer.close()
            self._gym_env.close()

    def __enter__(self) -> MetaWorldArm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- helpers
    def _observation(self) -> Observation:
        return Observation(
            images={self.camera: self.render()},
            state=self._raw[:4].astype(np.float32),
            instruction=self.instruction,
            timestamp=self.steps / self.fps,
        )


def camera_is_rolled(cam_xmat: np.ndarray) -> bool:
    """Whether a camera's up axis points below the horizon (its frames are upside down).

    ``cam_xmat``: the camera's world orientation, float ``[9]`` or ``[3, 3]`` (columns: right, up, back).
    """
    up = np.asarray(cam_xmat, dtype=np.float64).reshape(3, 3)[:, 1]
    return bool(up[2] < 0.0)


def _fast_renderer(model: Any, height: int, width: int) -> Any:
    """A MuJoCo offscreen renderer tuned for small frames on a CPU (llvmpipe).

    Per frame on one core (64×64, drawer-close, CPU time): gymnasium's renderer 21 ms; without
    reflections 16 ms; ``mujoco.Renderer`` (reads colour only, no depth) without 4× multisampling or
    reflections 7 ms. Shadows are off too (``shadowsize = 0``). The look changes little:
    edges are aliased and the table shows no reflection of the arm.
    """
    import mujoco

    model.vis.quality.shadowsize = 0
    model.vis.quality.offsamples = 0
    model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), width)
    model.vis.global_.offheight = max(int(model.vis.global_.offheight), height)
    renderer = mujoco.Renderer(model, height=height, width=width)
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
    return renderer


def _task_select_wrapper(env: Any) -> Any:
    """The MT1 wrapper that holds the task variations (the one with ``.tasks``)."""
    while not hasattr(env, "tasks"):
        if not hasattr(env, "env"):
            raise RuntimeError("Meta-World/MT1 env without a task-select wrapper (metaworld version?)")
        env = env.env
    return env
