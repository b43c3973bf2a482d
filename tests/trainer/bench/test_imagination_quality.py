"""Imagination quality: PSNR/SSIM/feature-distance sanity, open-loop replay over episodes of mixed lengths, the
horizon buckets, and the success-agreement bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainer.bench.imagination_quality import (
    copy_baseline,
    feature_distance,
    psnr,
    random_conv_features,
    replay_quality,
    ssim,
    success_agreement,
)
from trainer.reward_model import PRESETS as RM_PRESETS
from trainer.reward_model import FrameRewardModel, SuccessClassifier
from trainer.world_model import PRESETS, PixelWorldModel, RecordedEpisode
from trainer.world_model.network import ChunkDenoiser
from trainer.world_model.replay import replay


def frames(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)


def test_identical_frames_score_perfectly() -> None:
    a = frames(3)
    assert np.isinf(psnr(a, a)).all()
    np.testing.assert_allclose(ssim(a, a), 1.0, atol=1e-5)
    _, fn = random_conv_features()
    np.testing.assert_allclose(feature_distance(a, a, fn), 0.0, atol=1e-5)


def test_metrics_fall_with_corruption() -> None:
    a = frames(2, seed=1)
    b = a.astype(np.int16)
    b[..., 0] += 10  # known error: MSE = 100/3 over all channels
    b = np.clip(b, 0, 255).astype(np.uint8)
    exact = 10 * np.log10(255**2 / ((a.astype(float) - b) ** 2).mean(axis=(1, 2, 3)))
    np.testing.assert_allclose(psnr(a, b), exact)
    noisy = np.clip(a + np.random.default_rng(2).normal(0, 40, a.shape), 0, 255).astype(np.uint8)
    assert (ssim(a, noisy) < ssim(a, b)).all() and (ssim(a, noisy) < 0.9).all()
    _, fn = random_conv_features()
    assert (feature_distance(a, noisy, fn) > feature_distance(a, b, fn)).all()
    assert psnr(a[None], b[None]).shape == (1, 2)  # any leading shape


def test_replay_and_quality_over_episodes_of_mixed_lengths() -> None:
    torch.manual_seed(0)
    wm = PixelWorldModel(ChunkDenoiser(PRESETS["tiny"]), sampling_steps=1)  # untrained: copies the newest frame
    still = np.repeat(frames(1, seed=3), 70, axis=0)
    eps = [RecordedEpisode(f"e{n}", "t", "v", still[:n], np.zeros((n, 4), np.float32), n > 30) for n in (5, 70, 12)]
    imagined = replay(wm, eps)
    assert [len(f) for f in imagined] == [4, 69, 11]
    rows = replay_quality(imagined, eps)
    assert [r["horizon"] for r in rows] == ["1-8", "9-16", "17-32", "33-64", "65+"]
    assert sum(r["frames"] for r in rows) == 4 + 69 + 11
    assert all(r["psnr"] > 40 and r["ssim"] > 0.99 for r in rows)  # a still scene, copied: near perfect
    base = replay_quality(copy_baseline(eps), eps)
    assert all(r["psnr"] == 100.0 for r in base)  # identical frames, capped


def test_success_agreement_counts_per_task() -> None:
    cfg = RM_PRESETS["tiny"]
    always = FrameRewardModel(SuccessClassifier(cfg), cfg, threshold=0.0)  # every frame "succeeds"
    never = FrameRewardModel(SuccessClassifier(cfg), cfg, threshold=1.01)
    eps = [
        RecordedEpisode(f"{t}{i}", t, "v", frames(4, i), np.zeros((4, 4), np.float32), ok)
        for t, oks in (("a", (True, False, False)), ("b", (True, True)))
        for i, ok in enumerate(oks)
    ]
    imagined = [e.frames[1:] for e in eps]
    rows = {r["task"]: r for r in success_agreement(imagined, eps, always)}
    assert rows["a"]["agreement"] == pytest.approx(1 / 3) and rows["b"]["agreement"] == 1.0
    assert rows["all"]["episodes"] == 5 and rows["a"]["false_success"] == 2
    rows = {r["task"]: r for r in success_agreement(imagined, eps, never)}
    assert rows["a"]["agreement"] == pytest.approx(2 / 3) and rows["b"]["missed_success"] == 2
