"""A planar three-link arm with a gripper, seen from the side: the fake driver's "hardware".

Pure numpy: forward kinematics, a velocity-limited step toward a joint target, and a renderer that
draws the arm, a block on the table and the gripper into an RGB image plus an aligned depth image
(millimetres, as a RealSense would give), so a policy and a recorder get pictures that change with
the joints.

Shapes: joint vector float ``[4]`` = shoulder, elbow, wrist (radians), gripper opening (0 closed … 1
open). Images uint8 ``[H, W, 3]``, depth uint16 ``[H, W]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PlanarArm:
    joint_names: tuple[str, ...] = ("shoulder", "elbow", "wrist", "gripper")
    link_lengths: tuple[float, float, float] = (0.30, 0.25, 0.12)  # metres
    base: tuple[float, float] = (0.0, 0.05)  # (x, z) of the shoulder, metres
    position_min: tuple[float, ...] = (-1.6, -2.4, -2.0, 0.0)
    position_max: tuple[float, ...] = (1.6, 2.4, 2.0, 1.0)
    max_velocity: tuple[float, ...] = (1.5, 1.5, 2.0, 2.0)  # rad/s (gripper: 1/s)
    home: tuple[float, ...] = (0.3, 1.1, 0.9, 1.0)
    block: tuple[float, float] = (0.35, 0.0)  # (x, z) of the block on the table, metres
    camera_distance: float = 1.0  # metres from the arm's plane to the camera

    @property
    def dof(self) -> int:
        return len(self.joint_names)

    def clamp(self, q: np.ndarray) -> np.ndarray:
        return np.clip(q, self.position_min, self.position_max)


def joint_points(arm: PlanarArm, q: np.ndarray) -> np.ndarray:
    """(x, z) of shoulder, elbow, wrist and tool tip: float64 ``[4, 2]``."""
    pts = [np.array(arm.base, dtype=np.float64)]
    angle = np.pi / 2  # zero joint angles point the arm straight up
    for length, qi in zip(arm.link_lengths, q[:3], strict=True):
        angle -= float(qi)
        pts.append(pts[-1] + length * np.array([np.cos(angle), np.sin(angle)]))
    return np.stack(pts)


def tool_position(arm: PlanarArm, q: np.ndarray) -> np.ndarray:
    """Tool tip in the robot base frame, (x, y, z) metres: float64 ``[3]`` (y = 0: the arm is planar)."""
    x, z = joint_points(arm, q)[-1]
    return np.array([x, 0.0, z])


def step_toward(q: np.ndarray, target: np.ndarray, max_velocity: np.ndarray, dt: float) -> np.ndarray:
    """One driver tick: move each joint toward its target at most ``max_velocity * dt``."""
    return q + np.clip(target - q, -max_velocity * dt, max_velocity * dt)


# ---- rendering -------------------------------------------------------------------------------------

_VIEW_X = (-0.75, 0.75)  # metres shown across the image
_VIEW_Z = (-0.15, 0.85)  # metres shown bottom to top
_LINK_COLORS = np.array([[230, 120, 40], [60, 160, 230], [240, 200, 60]], dtype=np.uint8)


def render(arm: PlanarArm, q: np.ndarray, size: tuple[int, int] = (64, 64)) -> tuple[np.ndarray, np.ndarray]:
    """The side camera's view: (rgb uint8 ``[H, W, 3]``, depth uint16 ``[H, W]`` mm), upright."""
    h, w = size
    xs = np.linspace(*_VIEW_X, w)
    zs = np.linspace(_VIEW_Z[1], _VIEW_Z[0], h)  # row 0 is the top of the picture
    px, pz = np.meshgrid(xs, zs)
    pixel = (_VIEW_X[1] - _VIEW_X[0]) / w

    rgb = np.empty((h, w, 3), dtype=np.uint8)
    rgb[:] = (np.array([200, 210, 225]) - 60 * (pz[..., None] - _VIEW_Z[0])).clip(0, 255).astype(np.uint8)
    depth = np.full((h, w), round(arm.camera_distance * 2000), dtype=np.uint16)  # the wall behind

    table = pz < 0.0
    rgb[table] = (120, 95, 70)
    depth[table] = round(arm.camera_distance * 1000 + 150)

    bx, bz = arm.block
    block = (np.abs(px - bx) < 0.05) & (pz >= bz) & (pz < bz + 0.08)
    rgb[block] = (200, 40, 40)
    depth[block] = round(arm.camera_distance * 1000 - 30)

    pts = joint_points(arm, q)
    thickness = max(0.025, 1.2 * pixel)
    for i in range(3):
        mask = _segment_distance(px, pz, pts[i], pts[i + 1]) < thickness
        rgb[mask] = _LINK_COLORS[i]
        depth[mask] = round(arm.camera_distance * 1000 - 60 + 10 * i)

    # Two fingers at the tip, spread by the gripper opening, perpendicular to the last link.
    tip, wrist = pts[3], pts[2]
    along = (tip - wrist) / (np.linalg.norm(tip - wrist) + 1e-9)
    across = np.array([-along[1], along[0]])
    spread = 0.012 + 0.03 * float(np.clip(q[3], 0.0, 1.0))
    for sign in (-1.0, 1.0):
        root = tip + sign * spread * across
        mask = _segment_distance(px, pz, root, root + 0.06 * along) < 0.6 * thickness
        rgb[mask] = (40, 40, 40)
        depth[mask] = round(arm.camera_distance * 1000 - 40)
    return rgb, depth


def _segment_distance(px: np.ndarray, pz: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = b - a
    t = np.clip(((px - a[0]) * d[0] + (pz - a[1]) * d[1]) / (d @ d + 1e-12), 0.0, 1.0)
    return np.hypot(px - (a[0] + t * d[0]), pz - (a[1] + t * d[1]))


# ---- the fake task: touch the top of the block -----------------------------------------------------

BLOCK_HEIGHT = 0.08  # metres (the renderer draws it so)
TOUCH_TOLERANCE = 0.03  # metres between the tool tip and the middle of the block's top


def block_top(arm: PlanarArm) -> np.ndarray:
    """(x, z) of the middle of the block's top face."""
    return np.array([arm.block[0], arm.block[1] + BLOCK_HEIGHT])


def touching_block(arm: PlanarArm, q: np.ndarray) -> bool:
    return bool(np.linalg.norm(joint_points(arm, q)[-1] - block_top(arm)) < TOUCH_TOLERANCE)


def reach_down(arm: PlanarArm, target: np.ndarray, gripper: float = 0.0) -> np.ndarray:
    """Joints that put the tool tip at ``target`` (x, z) pointing straight down (elbow up), float [4].

    Planar 2-link inverse kinematics for the wrist, which sits one tool length above the target."""
    l1, l2, l3 = arm.link_lengths
    wrist = np.asarray(target, dtype=np.float64) + np.array([0.0, l3])
    d = wrist - np.array(arm.base)
    r2 = float(d @ d)
    cos_t2 = (r2 - l1 * l1 - l2 * l2) / (2 * l1 * l2)
    if not -1.0 <= cos_t2 <= 1.0:
        raise ValueError(f"target {target} is out of reach")
    t2 = -np.arccos(cos_t2)  # relative angle of link 2 to link 1 (negative: elbow up)
    a1 = np.arctan2(d[1], d[0]) - np.arctan2(l2 * np.sin(t2), l1 + l2 * np.cos(t2))
    a3 = -np.pi / 2
    q = np.array([np.pi / 2 - a1, -t2, a1 + t2 - a3, gripper])
    return arm.clamp(q)


class ReachPolicy:
    """A scripted policy for the fake arm: move the tool down onto the block, closing the gripper.

    ``vla.protocol.Policy``: chunks float32 ``[K, 4]`` of absolute joint targets, each at most
    ``step`` radians from the one before (under the default hardware velocity limits at 10 Hz), so the
    hardware envelope passes them unchanged."""

    def __init__(self, arm: PlanarArm | None = None, *, chunk_size: int = 8, step: float = 0.1) -> None:
        self.arm = arm or PlanarArm()
        self.chunk_size, self.action_dim, self.step = chunk_size, self.arm.dof, step
        self.goal = reach_down(self.arm, block_top(self.arm))
        self.version = "reach"

    def reset(self) -> None:
        pass

    def act(self, obs: object, temperature: float = 0.0) -> object:
        from data_store.schema import ActionChunk

        q = np.asarray(obs.state, dtype=np.float64)  # type: ignore[attr-defined]
        out = []
        for _ in range(self.chunk_size):
            q = q + np.clip(self.goal - q, -self.step, self.step)
            out.append(q.copy())
        return ActionChunk(np.asarray(out, dtype=np.float32), policy_version=self.version)
