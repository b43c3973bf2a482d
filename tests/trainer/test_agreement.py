"""Action-replay agreement (trainer/agreement.py): the figures on hand-made outcomes, and the replay itself on the
real simulated arm (a replay of an episode's recorded actions from its recorded scene reproduces it)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainer.agreement import figures, first_true, pair_agreement, replay_on_arm, replay_targets, reward_figures
from trainer.imagine import StartState


def test_pairs_agree_only_where_the_order_of_outcomes_is_the_same() -> None:
    real = np.array([1, 0, 0, 0])
    assert pair_agreement(real, real, 4) == (1.0, 1.0, 3)
    # imagination picks the wrong member: none of the 3 pairs the arm separates agrees; of all 6, only (2, 3)
    allp, sep, n = pair_agreement(np.array([0, 1, 0, 0]), real, 4)
    assert (allp, sep, n) == (pytest.approx(1 / 6), 0.0, 3)
    # a group the arm does not separate has no separated pair
    assert np.isnan(pair_agreement(np.array([1, 0]), np.array([0, 0]), 2)[1])


def test_outcome_figures_by_depth_and_kind_of_error() -> None:
    # 2 groups of 2; horizon 100; imagined success at 10 where the arm succeeds only at 60 (row 0)
    imagined = np.array([10, -1, 5, -1])
    real = np.array([60, -1, -1, 30])
    left = np.array([100, 100, 100, 100])
    f = figures(imagined, real, left, group=2, horizon=100)
    assert f["outcome_agreement"] == 0.5  # rows 0, 1 agree; 2 (false success) and 3 (missed) do not
    assert f["false_success"] == 0.25 and f["missed_success"] == 0.25
    assert f["imagined_success"] == 0.5 and f["replayed_success"] == 0.5
    assert f["outcome_agreement_by_step_25"] == 0.5  # row 0: imagined yes, arm not yet; row 2 false; rows 1, 3 agree
    assert f["outcome_agreement_by_step_100"] == 0.5
    assert f["groups_mixed_imagined"] == 1.0 and f["groups_mixed_replayed"] == 1.0
    assert figures(imagined, np.array([60, -1, -1, -1]), left, 2, 100)["groups_mixed_replayed"] == 0.5
    # a success past a trajectory's step budget is no success
    g = figures(np.array([50]), np.array([50]), np.array([40]), group=1, horizon=100)
    assert g["imagined_success"] == 0.0 and g["outcome_agreement"] == 1.0


def test_frame_errors_sit_beside_an_unchanging_frame() -> None:
    from trainer.agreement import frame_errors

    seen = np.full((2, 1, 4, 4, 3), 100, np.uint8)
    imagined = np.zeros((2, 10, 4, 4, 3), np.uint8)
    imagined[:, 3] = 90  # 10 off at step 4
    first = np.full((2, 4, 4, 3), 70, np.uint8)  # 30 off
    f = frame_errors(imagined, seen, first, [3], np.array([10, 2]))  # row 1 never reached step 4
    assert f == {"frame_error_by_step_4": 10.0, "frame_error_unchanged_by_step_4": 30.0}


def test_reward_figures_count_only_replayed_frames() -> None:
    scores = np.array([[0.9, 0.9, 0.9], [0.1, 0.9, 0.1]])
    flags = np.array([[False, True, True], [False, False, False]])
    f = reward_figures(scores, 0.5, flags, np.array([3, 1]))  # row 1: only its first frame was replayed
    assert f["reward_precision"] == pytest.approx(2 / 3) and f["reward_recall"] == 1.0
    assert f["reward_positives"] == 2
    assert first_true(flags).tolist() == [1, -1]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> object:
    """Real Zarr store, two scripted-expert drawer-close episodes that succeed, their scene seeds in meta."""
    from data_store.episodes import EpisodeStore
    from trainer.world_model.recording import NoisyExpertPlan, record_noisy_expert

    s = EpisodeStore(tmp_path_factory.mktemp("agreement_store"))
    record_noisy_expert(s, "drawer-close", 2, NoisyExpertPlan(noise_levels=(0.0,), min_steps=100, max_steps=100))
    return s


def _start(store: object, episode_id: str, step: int) -> StartState:
    r = store.open(episode_id)  # type: ignore[attr-defined]
    return StartState(
        context_frames=r.images(next(iter(r.spec.cameras)))[:1],
        context_actions=np.zeros((0, 4), np.float32),
        state=r.states()[step],
        instruction="close the drawer",
        steps_left=100 - step,
        episode_id=episode_id,
        start_step=step,
    )


def test_replaying_recorded_actions_reproduces_the_episode(recorded: object) -> None:
    """From its scene seed, an episode's own actions bring the arm to success at the step it was recorded at,
    from the first frame and from a start mid-episode (the prefix replayed first), through the states recorded."""
    from sim.env import MetaWorldArm

    infos = recorded.episodes(task="drawer-close")  # type: ignore[attr-defined]
    assert all(i.success == "true" for i in infos)
    with MetaWorldArm("drawer-close") as arm:
        for info in infos:
            r = recorded.open(info.episode_id)  # type: ignore[attr-defined]
            actions, states = r.actions(), r.states()
            n = len(actions)
            starts = [_start(recorded, info.episode_id, 0), _start(recorded, info.episode_id, 7)]
            targets = replay_targets(recorded, starts)
            assert [t.scene for t in targets if t] == [info.meta["seed"]] * 2
            assert [len(t.prefix) for t in targets if t] == [0, 7]
            rest = np.zeros((2, n, 4), np.float32)
            rest[0], rest[1, : n - 7] = actions, actions[7:]
            flags, seen = replay_on_arm(arm, [t for t in targets if t], rest, np.array([n, n - 7]), look_at=[9])
            # the recorded episode ended at its first success, after its last action
            assert first_true(flags).tolist() == [n - 1, n - 1 - 7]
            # the arm's frame after action 9 is the recorded frame 10 (step t: the frame seen before action t)
            assert np.array_equal(seen[0, 0], r.images(next(iter(r.spec.cameras)))[10])
            assert np.array_equal(seen[1, 0], r.images(next(iter(r.spec.cameras)))[17])
            arm.reset(info.meta["seed"])
            for t in range(n):
                assert np.allclose(arm.raw_observation()[:4], states[t], atol=1e-5)
                arm.advance(actions[t])


def test_a_start_without_a_scene_seed_is_not_replayed(recorded: object) -> None:
    unknown = StartState(np.zeros((1, 64, 64, 3), np.uint8), np.zeros((0, 4), np.float32), np.zeros(4), "x", 10)
    assert replay_targets(recorded, [unknown]) == [None]


def test_measure_replays_what_imagination_sent(recorded: object) -> None:
    """End to end with the real tiny models: a reward model that calls every frame a success makes imagined
    success 1, so outcome agreement is exactly the arm's success rate on the same actions."""
    from sim.env import MetaWorldArm
    from trainer.agreement import measure
    from trainer.coevolution import Imagination
    from trainer.imagine import ProprioModel, StartSampler
    from trainer.reward_model import PRESETS as RM_PRESETS
    from trainer.reward_model import FrameRewardModel, SuccessClassifier
    from trainer.world_model import PRESETS as WM_PRESETS
    from trainer.world_model import PixelWorldModel
    from trainer.world_model.network import ChunkDenoiser
    from vla.model import VLAConfig, VLAPolicy
    from vla.norm_stats import NormStats

    infos = recorded.episodes(task="drawer-close")  # type: ignore[attr-defined]
    r = recorded.open(infos[0].episode_id)  # type: ignore[attr-defined]
    torch.manual_seed(0)
    spec = r.spec
    stats = NormStats.fit(r.states(), r.actions(), spec)
    policy = VLAPolicy(VLAConfig.preset("tiny"), stats, spec).eval()
    wm = PixelWorldModel(ChunkDenoiser(WM_PRESETS["tiny"]))
    rm = FrameRewardModel(SuccessClassifier(RM_PRESETS["tiny"]), RM_PRESETS["tiny"], threshold=-1.0)
    c = wm.config.context_frames
    cam = next(iter(spec.cameras))
    starts = [
        StartState(
            context_frames=np.repeat(recorded.open(i.episode_id).images(cam)[:1], c, axis=0),  # type: ignore[attr-defined]
            context_actions=np.zeros((c - 1, 4), np.float32),
            state=recorded.open(i.episode_id).states()[0],  # type: ignore[attr-defined]
            instruction=i.instruction,
            steps_left=16,
            episode_id=i.episode_id,
        )
        for i in infos
    ]
    proprio = ProprioModel(np.eye(4, dtype=np.float32) * 0.01, np.zeros(4), -np.ones(4), np.ones(4))
    imagination = Imagination(wm, rm, proprio, StartSampler(starts, []), cam, safety="sim")  # type: ignore[arg-type]
    with MetaWorldArm("drawer-close") as arm:
        a = measure(policy, imagination, starts, recorded, arm, temperature=1.3, group=2, horizon=16, seed=0)
    assert a is not None and a.skipped == 0
    f = a.figures
    assert f["trajectories"] == 4 and f["imagined_success"] == 1.0
    assert f["outcome_agreement"] == f["replayed_success"]
    assert set(a.by_kind) == {"first_frame"}
    assert "agreement_outcome_agreement" in a.metrics() and "action-replay agreement" in a.line()
    assert f["frame_error_by_step_4"] >= 0 and f["frame_error_unchanged_by_step_4"] >= 0
