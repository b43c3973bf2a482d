"""The success reward model: labels, first-success masking, overfitting real frames, calibration, save/load."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from trainer.protocols import RewardModel
from trainer.reward_model import (
    PRESETS,
    FrameRewardModel,
    SuccessClassifier,
    evaluate,
    first_over,
    fit_reward_model,
    frame_labels,
    prf,
    train_reward_model,
    valid_steps,
)
from trainer.world_model import RecordedEpisode, load_episodes

TINY = PRESETS["tiny"]


def episode(n: int, success: bool | None, step: int | None = None) -> RecordedEpisode:
    frames = np.zeros((n, 64, 64, 3), np.uint8)
    return RecordedEpisode("e", "t", "v", frames, np.zeros((n, 4), np.float32), success, step)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> object:
    """Real drawer-close episodes: two noise-free experts that succeed, two short budgets that fail."""
    from data_store.episodes import EpisodeStore
    from trainer.world_model.recording import NoisyExpertPlan, record_noisy_expert

    s = EpisodeStore(tmp_path_factory.mktemp("rm_store"))
    record_noisy_expert(s, "drawer-close", 2, NoisyExpertPlan(noise_levels=(0.0,), min_steps=150, max_steps=150))
    record_noisy_expert(s, "drawer-close", 2, NoisyExpertPlan(noise_levels=(0.0,), min_steps=25, max_steps=25), seed=5)
    return s


def test_labels_positive_at_success_negative_before_and_in_failures() -> None:
    cfg = replace(TINY, success_tail=2, gap=3)
    np.testing.assert_array_equal(frame_labels(episode(8, True), cfg), [0, 0, 0, -1, -1, -1, 1, 1])
    np.testing.assert_array_equal(frame_labels(episode(8, True, step=4), cfg), [0, -1, -1, -1, 1, 1, 1, 1])
    np.testing.assert_array_equal(frame_labels(episode(5, False), cfg), [0] * 5)
    np.testing.assert_array_equal(frame_labels(episode(5, None), cfg), [-1] * 5)


def test_first_success_and_the_post_success_mask() -> None:
    scores = np.array([[0.1, 0.2, 0.95, 0.3, 0.99], [0.1, 0.1, 0.1, 0.1, 0.1], [0.9, 0.0, 0.0, 0.0, 0.0]])
    at = first_over(scores, 0.9)
    np.testing.assert_array_equal(at, [2, -1, 0])
    assert at.dtype == np.int64
    mask = valid_steps(at, 5)
    np.testing.assert_array_equal(mask[0], [True, True, True, False, False])  # steps after success are masked
    assert mask[1].all()  # no success: every step counts
    np.testing.assert_array_equal(mask[2], [True, False, False, False, False])


def test_precision_recall_f1() -> None:
    m = prf(np.array([1, 1, 0, 0, 1], bool), np.array([1, 0, 0, 1, 1], bool))
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3) and m["accuracy"] == pytest.approx(0.6)


def test_overfits_real_frames_and_separates_the_episodes(store: object, tmp_path: Path) -> None:
    eps = load_episodes(store)
    assert sorted(e.success for e in eps) == [False, False, True, True]
    cfg = replace(TINY, steps=150, lr=3e-3, blur_prob=0.0, noise_std=0.0, brightness=0.0)
    res = fit_reward_model(eps, tmp_path / "rm", config=cfg, calibration=eps, log_every=10)
    first, last = res.losses[0][1], min(v for _, v in res.losses[-3:])
    assert last < 0.2 * first, res.losses
    rm = res.model
    assert isinstance(rm, RewardModel)
    m = evaluate(rm, eps)
    assert m["episode"]["accuracy"] == 1.0 and m["frame"]["f1"] > 0.9, m
    scores = rm.score(np.stack([e.frames[:20] for e in eps]))
    assert scores.shape == (4, 20) and scores.dtype == np.float32
    # save/load keeps the calibrated threshold and the scores
    loaded = FrameRewardModel.load(tmp_path / "rm")
    assert loaded.threshold == rm.threshold
    np.testing.assert_allclose(loaded.score(eps[0].frames[None]), rm.score(eps[0].frames[None]), atol=1e-6)
    manifest = json.loads((tmp_path / "rm" / "manifest.json").read_text())
    assert manifest["kind"] == "reward-model" and manifest["calibration"]["threshold"] == rm.threshold


def test_store_training_needs_both_outcomes(store: object, tmp_path: Path) -> None:
    rm = train_reward_model(store, tmp_path / "rm", preset="tiny", steps=3)
    assert 0.0 < rm.threshold < 1.0
    # with a world model, its replays of the training episodes are trained on and join the calibration
    from trainer.world_model import PRESETS as WM_PRESETS
    from trainer.world_model import PixelWorldModel
    from trainer.world_model.network import ChunkDenoiser

    wm = PixelWorldModel(ChunkDenoiser(WM_PRESETS["tiny"]))
    train_reward_model(store, tmp_path / "rm_wm", preset="tiny", steps=3, world_model=wm)
    data = json.loads((tmp_path / "rm_wm" / "manifest.json").read_text())["dataset"]
    assert (data["episodes"], data["imagined"], data["calibration"]) == (2, 2, 4)  # 2 real + 2 imagined
    failed = [e.episode_id for e in load_episodes(store, success=False)]  # no frame can be a positive
    with pytest.raises(ValueError, match="successes and failures"):
        train_reward_model(store, tmp_path / "rm2", preset="tiny", steps=3, episode_ids=failed)


def test_score_checks_its_input() -> None:
    rm = FrameRewardModel(SuccessClassifier(TINY), TINY)
    with pytest.raises(ValueError, match="uint8"):
        rm.score(np.zeros((2, 64, 64, 3), np.uint8))
    assert rm.first_success(np.zeros((2, 3, 64, 64, 3), np.uint8)).shape == (2,)
