"""MetaWorldArm: spaces, seeded scenes, upright non-constant frames, success and episode length."""

from __future__ import annotations

import numpy as np
import pytest

from data_store.schema import check_observation
from sim.env import MetaWorldArm, camera_is_rolled


def test_spec_and_observation_shapes(drawer_arm: MetaWorldArm) -> None:
    spec = drawer_arm.spec
    assert spec.cameras == {"corner4": (64, 64)}
    assert (spec.state_dim, spec.action_dim) == (4, 4)
    assert spec.action_low == (-1.0,) * 4 and spec.action_high == (1.0,) * 4
    obs = drawer_arm.reset(3)
    check_observation(obs, spec)  # raises SchemaError on any mismatch
    np.testing.assert_array_equal(obs.state, drawer_arm.raw_observation()[:4].astype(np.float32))
    assert drawer_arm.raw_observation().shape == (39,)
    assert obs.instruction in drawer_arm.task.instructions


def test_same_seed_gives_the_same_scene_and_first_frame(push_arm: MetaWorldArm) -> None:
    a = push_arm.reset(7)
    raw_a = push_arm.raw_observation()
    push_arm.step(np.array([1, 0, 0, 0], np.float32))  # disturb the state in between
    push_arm.reset(123)
    b = push_arm.reset(7)
    np.testing.assert_array_equal(raw_a, push_arm.raw_observation())
    np.testing.assert_array_equal(a.images["corner4"], b.images["corner4"])


def test_different_seeds_move_the_object_and_the_goal(push_arm: MetaWorldArm) -> None:
    scenes = []
    for seed in range(4):
        push_arm.reset(seed)
        raw = push_arm.raw_observation()
        scenes.append((tuple(np.round(raw[4:7], 4)), tuple(np.round(raw[-3:], 4))))  # puck xyz, goal xyz
    assert len({puck for puck, _ in scenes}) == 4
    assert len({goal for _, goal in scenes}) == 4


def test_frames_are_upright_and_not_constant(drawer_arm: MetaWorldArm) -> None:
    # corner4 is rolled 180° in Meta-World's XML: raw frames have the table on top. Upright, the grey
    # background is at the top and the brown table fills the bottom (red channel well above blue).
    frame = drawer_arm.reset(0).images["corner4"].astype(np.float64)
    assert frame.std() > 10
    warmth = frame[..., 0] - frame[..., 2]
    assert warmth[-16:].mean() > warmth[:8].mean() + 15
    # the rule that decides the rotation, on the model's own camera poses
    data = drawer_arm._env.data
    model = drawer_arm._env.model
    import mujoco

    def rolled(name: str) -> bool:
        return camera_is_rolled(data.cam_xmat[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name)])

    assert rolled("corner4") and rolled("corner")
    assert not rolled("topview")


def test_frame_changes_when_the_hand_moves(drawer_arm: MetaWorldArm) -> None:
    first = drawer_arm.reset(0).images["corner4"]
    for _ in range(10):
        obs = drawer_arm.step(np.array([0, 0, 1, 0], np.float32))
    moved = obs.images["corner4"]
    assert np.abs(moved.astype(int) - first.astype(int)).sum() > 0
    assert obs.timestamp == pytest.approx(10 / drawer_arm.fps)


def test_hand_moves_up_with_positive_dz(drawer_arm: MetaWorldArm) -> None:
    z0 = drawer_arm.reset(0).state[2]
    for _ in range(5):
        obs = drawer_arm.step(np.array([0, 0, 1, 0], np.float32))
    assert obs.state[2] > z0 + 0.02  # 1 cm per unit per step (action_scale), minus tracking lag


def test_max_steps_truncates_and_standing_still_does_not_succeed() -> None:
    with MetaWorldArm("drawer-close", max_steps=15) as arm:
        arm.reset(1)
        for _ in range(14):
            arm.step(np.zeros(4, np.float32))
        assert not arm.truncated
        arm.step(np.zeros(4, np.float32))
        assert arm.truncated and not arm.success() and not arm.ever_succeeded


def test_camera_size_and_unknown_camera() -> None:
    with MetaWorldArm("reach", camera="topview", image_size=(32, 48)) as arm:
        assert arm.reset(0).images["topview"].shape == (32, 48, 3)
    with pytest.raises(ValueError, match="unknown camera"):
        MetaWorldArm("reach", camera="ceiling")


def test_advance_renders_only_when_observed_and_matches_step(drawer_arm: MetaWorldArm) -> None:
    """``advance`` steps the physics without a render; ``observe`` then shows the same frame ``step`` would."""
    actions = np.random.default_rng(0).uniform(-1, 1, (8, 4)).astype(np.float32)
    drawer_arm.reset(5)
    for a in actions:
        stepped = drawer_arm.step(a)
    drawer_arm.reset(5)
    before = drawer_arm.observe()
    for a in actions:
        drawer_arm.advance(a)
    assert drawer_arm.steps == len(actions) and drawer_arm._stale
    advanced = drawer_arm.observe()
    assert not np.array_equal(advanced.images[drawer_arm.camera], before.images[drawer_arm.camera])
    np.testing.assert_array_equal(advanced.images[drawer_arm.camera], stepped.images[drawer_arm.camera])
    np.testing.assert_allclose(advanced.state, stepped.state)
