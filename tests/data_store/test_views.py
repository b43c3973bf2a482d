"""Training views: sample contents, padding masks, filters, keyframe hook, and a torch DataLoader over them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from episode_helpers import pixel, small_spec, step

from data_store.episodes import EpisodeStore
from data_store.views import EpisodeView, ViewConfig

# a world model's view: first-frame anchor + 4 recent frames -> the next 8 frames under the next 8 actions (WoVR)
WORLD_MODEL_VIEW = ViewConfig(context=4, anchor_first=True, chunk=8, future=True, statuses=("complete", "aborted"))


def make_store(root: Path) -> tuple[EpisodeStore, list[str]]:
    """Three episodes: drawer-close of 10 steps (success), push of 5 (failure), drawer-close of 6 (aborted)."""
    spec = small_spec()
    store = EpisodeStore(root)
    ids = []
    for task, n, end in [("drawer-close", 10, True), ("push", 5, False), ("drawer-close", 6, None)]:
        w = store.create(spec, task=task, instruction=f"do {task}")
        for t in range(n):
            w.append(*step(spec, t))
        w.abort("e-stop") if end is None else w.finish(end)
        ids.append(w.episode_id)
    return store, ids


def test_policy_view_samples(store_dir: Path) -> None:
    store, (a, b, _) = make_store(store_dir)
    view = EpisodeView(store, "policy")
    assert len(view) == 15  # complete episodes only: 10 + 5 steps
    s = view[view.index.index((a, 7))]
    assert s["frames"].shape == (1, 16, 16, 3) and s["frames"][0, 0, 0, 0] == pixel(7)
    assert s["state"].dtype == np.float32 and s["state"][0] == 7
    assert s["actions"].shape == (8, 4)
    # steps 7, 8, 9 are real; the rest repeat the last action and are masked out
    assert list(s["actions_mask"]) == [True] * 3 + [False] * 5
    assert np.allclose(s["actions"][:, 0], np.array([7, 8, 9, 9, 9, 9, 9, 9]) / 1000.0)
    assert s["instruction"] == "do drawer-close" and s["episode_id"] == a and s["step"] == 7
    assert s["success"] == 1.0
    assert view[view.index.index((b, 0))]["success"] == 0.0


def test_world_model_view_context_and_future(store_dir: Path) -> None:
    store, (a, _, c) = make_store(store_dir)
    view = EpisodeView(store, WORLD_MODEL_VIEW)
    assert len(view) == 21  # aborted episodes feed the world model too
    s = view[view.index.index((a, 2))]
    # anchor (frame 0) + last 4 frames up to step 2 (steps -1, 0, 1, 2): step -1 repeats frame 0, masked
    assert s["frames"].shape == (5, 16, 16, 3)
    assert list(s["frames"][:, 0, 0, 0]) == [pixel(0), pixel(0), pixel(0), pixel(1), pixel(2)]
    assert list(s["frames_mask"]) == [True, False, True, True, True]
    assert list(s["future_frames"][:, 0, 0, 0]) == [pixel(t) for t in range(3, 10)] + [pixel(9)]
    assert list(s["future_mask"]) == [True] * 7 + [False]
    assert math.isnan(view[view.index.index((c, 0))]["success"])


def test_filters(store_dir: Path) -> None:
    store, (a, b, c) = make_store(store_dir)
    assert {e for e, _ in EpisodeView(store, "policy", success_only=True).index} == {a}
    assert {e for e, _ in EpisodeView(store, "policy", tasks=("push",)).index} == {b}
    assert {e for e, _ in EpisodeView(store, WORLD_MODEL_VIEW, episode_ids=(c, b)).index} == {b, c}
    with pytest.raises(ValueError, match="context and chunk"):
        ViewConfig(context=0)


def test_keyframe_hook(store_dir: Path) -> None:
    store, (a, b, c) = make_store(store_dir)
    view = EpisodeView(store, "policy", keyframes=[(a, 4, 3.0), (b, 1), (c, 2)])  # c is aborted: filtered out
    assert view.index == [(a, 4), (b, 1)] and list(view.weights) == [3.0, 1.0]
    assert view[0]["frames"][0, 0, 0, 0] == pixel(4)
    with pytest.raises(IndexError, match="out of range"):
        EpisodeView(store, "policy", keyframes=[(a, 10)])


def test_torch_dataloader_batches(store_dir: Path) -> None:
    torch = pytest.importorskip("torch")
    store, _ = make_store(store_dir)
    view = EpisodeView(store, WORLD_MODEL_VIEW)
    sampler = torch.utils.data.WeightedRandomSampler(view.weights, num_samples=8)
    batch = next(iter(torch.utils.data.DataLoader(view, batch_size=8, sampler=sampler)))
    assert batch["frames"].shape == (8, 5, 16, 16, 3) and batch["frames"].dtype == torch.uint8
    assert batch["actions"].shape == (8, 8, 4) and batch["actions_mask"].dtype == torch.bool
    assert len(batch["instruction"]) == 8 and batch["step"].shape == (8,)
