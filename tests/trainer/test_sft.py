"""SFT on a real Zarr store: learns the demos, skips failures, checkpoints and resumes exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sft_helpers import demo_store

from trainer.sft import SFTConfig, load_demonstrations, train_sft
from vla.artifact import load_artifact, verify_artifact


def _cfg(**kw: object) -> SFTConfig:
    base = dict(preset="tiny", steps=80, batch_size=16, lr=3e-3, warmup_steps=5, checkpoint_every=20, shift_pixels=0)
    return SFTConfig(**{**base, **kw})  # type: ignore[arg-type]


def test_demonstrations_are_the_successful_episodes_as_chunks(tmp_path: Path) -> None:
    store = demo_store(tmp_path / "store", episodes=3, steps=12)
    data = load_demonstrations(store, None, chunk=8)
    assert len(data) == 3 * 12  # the failed episode is left out
    assert data.images.shape == (36, 64, 64, 3) and data.chunks.shape == (36, 8, 4) and data.chunk_mask.shape == (36, 8)
    assert data.chunk_mask[11].sum() == 1 and data.chunk_mask[0].all()  # last step: only its own action is real
    assert data.tasks == ["task-0", "task-1"] and len(data.instructions) == 3
    only = load_demonstrations(store, ("task-1",), chunk=8)
    assert len(only) == 12
    with pytest.raises(ValueError, match="no successful episodes"):
        load_demonstrations(store, ("nope",), chunk=8)


def test_sft_overfits_a_tiny_dataset_and_writes_an_artifact(tmp_path: Path) -> None:
    store = demo_store(tmp_path / "store")
    result = train_sft(store, tmp_path / "policy", _cfg())
    start, end = np.mean(result.losses[:5]), np.mean(result.losses[-5:])
    assert start > 4.0 and end < 0.25 * start, (start, end)
    manifest = verify_artifact(tmp_path / "policy")
    assert manifest["version"] == result.version
    assert manifest["dataset_snapshot"].startswith("episodes-") and manifest["metrics"]["train_episodes"] == 3
    # the trained policy's most likely tokens reproduce a demo's chunk from its first frame (its mode: after 80 steps
    # the distributions still have wide tails, which pull the median bin, T = 0's action, towards the middle)
    policy = load_artifact(tmp_path / "policy")
    reader = store.open(store.episodes(success=True)[0].episode_id)
    tokens = policy.logits([reader.observation(0)])[0].argmax(-1)
    assert float((tokens - policy.encode_actions(reader.actions()[:8])).abs().le(2).float().mean()) > 0.5  # chance ~2%


class _Killed(Exception):
    pass


def test_resume_after_a_kill_reaches_the_same_final_step_and_weights(tmp_path: Path) -> None:
    store = demo_store(tmp_path / "store")
    cfg = _cfg(steps=30, checkpoint_every=10, shift_pixels=4)
    straight = train_sft(store, tmp_path / "straight", cfg)

    def kill_at_25(step: int, loss: float) -> None:
        if step == 25:
            raise _Killed  # the process dies after step 25; the last checkpoint is step 20

    with pytest.raises(_Killed):
        train_sft(store, tmp_path / "resumed", cfg, on_step=kill_at_25)
    state = json.loads((tmp_path / "resumed.ckpt" / "train_state.json").read_text())
    assert state["step"] == 20 and not (tmp_path / "resumed").exists()
    assert not any(p.name.endswith((".pt", ".pkl")) for p in (tmp_path / "resumed.ckpt").rglob("*"))

    resumed = train_sft(store, tmp_path / "resumed", cfg)
    assert resumed.step == straight.step == 30 and len(resumed.losses) == 30
    np.testing.assert_allclose(resumed.losses, straight.losses, rtol=1e-4, atol=1e-5)
    for name, tensor in straight.policy.state_dict().items():
        torch.testing.assert_close(resumed.policy.state_dict()[name], tensor, rtol=1e-4, atol=1e-5)

    with pytest.raises(ValueError, match="other settings"):
        train_sft(store, tmp_path / "resumed", _cfg(steps=30, checkpoint_every=10, lr=1e-2))
    fresh = train_sft(store, tmp_path / "resumed", _cfg(steps=3, checkpoint_every=10), resume=False)
    assert len(fresh.losses) == 3
