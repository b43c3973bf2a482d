"""The world model: window alignment, shapes, seeded determinism, save/load, resume after a kill, fine-tuning from the
store with a policy-version filter, and that it overfits a tiny set of real Meta-World frames."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.protocols import WorldModel
from trainer.world_model import (
    PRESETS,
    ChunkWindows,
    PixelWorldModel,
    RecordedEpisode,
    TrainConfig,
    fit_world_model,
    load_episodes,
    split_held_out,
    train_world_model,
)
from trainer.world_model.network import ChunkDenoiser

TINY = PRESETS["tiny"]


def counting_episode(n: int = 20, a: int = 4, eid: str = "e0") -> RecordedEpisode:
    """Frame t is filled with the value t; action t is t in every dimension: alignment is readable."""
    frames = np.stack([np.full((64, 64, 3), t, np.uint8) for t in range(n)])
    actions = np.stack([np.full(a, t, np.float32) for t in range(n)])
    return RecordedEpisode(eid, "count", "v0", frames, actions, True)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> object:
    """A real Zarr store with a few short noisy-expert drawer-close episodes, two policy versions."""
    from data_store.episodes import EpisodeStore
    from trainer.world_model.recording import NoisyExpertPlan, record_noisy_expert

    s = EpisodeStore(tmp_path_factory.mktemp("wm_store"))
    plan = NoisyExpertPlan(noise_levels=(0.0, 0.5), min_steps=20, max_steps=20)
    record_noisy_expert(s, "drawer-close", 2, plan, seed=0, policy_version="v1")
    record_noisy_expert(s, "drawer-close", 1, plan, seed=10, policy_version="v2")
    return s


def test_windows_follow_the_recording_convention() -> None:
    """Context = [frame 0, frames s-M+1..s]; targets = frames s+1..s+K after actions s..s+K-1; past the end the
    last frame repeats with zero actions."""
    ep = counting_episode(12)
    w = ChunkWindows([ep], chunk_size=8, memory_frames=2)
    assert len(w) == 11
    ctx, act, tgt = w.batch(np.random.default_rng(0), 64)
    for c, a, t in zip(ctx, act, tgt, strict=True):
        s = int(c[-1, 0, 0, 0])
        assert c[0, 0, 0, 0] == 0 and c[1, 0, 0, 0] == max(s - 1, 0)
        expect_t = np.minimum(np.arange(s + 1, s + 9), 11)
        np.testing.assert_array_equal(t[:, 0, 0, 0], expect_t)
        expect_a = np.where(np.arange(s, s + 8) < 11, np.arange(s, s + 8), 0)
        np.testing.assert_array_equal(a[:, 0], expect_a)


def test_shapes_protocol_and_rollout() -> None:
    torch.manual_seed(0)
    wm = PixelWorldModel(ChunkDenoiser(TINY), sampling_steps=2)
    assert isinstance(wm, WorldModel)
    frames = np.random.default_rng(0).integers(0, 255, (3, 3, 64, 64, 3), dtype=np.uint8)
    state = wm.reset(frames, np.zeros((3, 2, 4), np.float32))
    out, state = wm.step(state, np.zeros((3, 8, 4), np.float32))
    assert out.shape == (3, 8, 64, 64, 3) and out.dtype == np.uint8
    short, _ = wm.step(state, np.zeros((3, 5, 4), np.float32))
    assert short.shape == (3, 5, 64, 64, 3)
    video = wm.rollout(frames[:, 0], np.zeros((3, 13, 4), np.float32))
    assert video.shape == (3, 13, 64, 64, 3)
    with pytest.raises(ValueError, match="context_frames"):
        wm.reset(frames.astype(np.float32))
    with pytest.raises(ValueError, match="action_chunk"):
        wm.step(state, np.zeros((3, 9, 4), np.float32))
    # an untrained model starts as "copy the newest frame" (zero-initialised head): the pipeline is exact
    np.testing.assert_allclose(out.astype(int), np.repeat(frames[:, -1:], 8, axis=1).astype(int), atol=1)


def test_seeded_determinism_and_save_load(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = ChunkDenoiser(TINY)
    with torch.no_grad():  # make the output depend on the noise: perturb the zero-initialised head
        net.head_out.weight.normal_(0, 0.05)
    wm = PixelWorldModel(net, sampling_steps=3, seed=7)
    first = np.random.default_rng(1).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    actions = np.random.default_rng(2).uniform(-1, 1, (2, 16, 4)).astype(np.float32)
    a, b = wm.rollout(first, actions), wm.rollout(first, actions)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, wm.rollout(first, actions, seed=8))
    wm.save(tmp_path / "wm")
    loaded = PixelWorldModel.load(tmp_path / "wm", sampling_steps=3, seed=7)
    np.testing.assert_array_equal(a, loaded.rollout(first, actions))
    manifest = json.loads((tmp_path / "wm" / "manifest.json").read_text())
    assert manifest["kind"] == "world-model" and "model.safetensors" in manifest["files"]
    with open(tmp_path / "wm" / "config.json", "a") as f:  # an edited file no longer matches its hash
        f.write(" ")
    with pytest.raises(ValueError, match="sha256"):
        PixelWorldModel.load(tmp_path / "wm")


def test_resume_after_a_kill_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    eps = [counting_episode(16, eid="a"), counting_episode(10, eid="b")]
    cfg = TrainConfig(steps=6, batch_size=2, checkpoint_every=3, log_every=3, warmup_steps=2)
    whole = fit_world_model(eps, tmp_path / "whole", config=TINY, train=cfg, progress=False)

    class Killed(Exception):
        pass

    def kill_at_3(step: int, loss: float) -> None:
        if step == 3:
            raise Killed

    with pytest.raises(Killed):
        fit_world_model(eps, tmp_path / "run", config=TINY, train=cfg, on_log=kill_at_3, progress=False)
    assert json.loads((tmp_path / "run" / "checkpoint" / "train_state.json").read_text())["step"] == 3
    resumed = fit_world_model(eps, tmp_path / "run", config=TINY, train=cfg, resume=True, progress=False)
    assert resumed.steps == 3
    for (k, v), (_, w) in zip(
        whole.model.net.state_dict().items(), resumed.model.net.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(v, w, msg=k)


def test_overfits_a_tiny_set_of_real_frames(store: object, tmp_path: Path) -> None:
    """Its loss on a fixed batch falls far below where it started (the untrained model copies the newest frame),
    and its open-loop replay beats "nothing moves". Real drawer-close frames, 2×2-averaged to 32×32 for speed."""
    from trainer.bench.imagination_quality import copy_baseline, psnr
    from trainer.world_model.flow import flow_loss
    from trainer.world_model.model import frames_to_tensor
    from trainer.world_model.replay import replay

    ep = load_episodes(store, policy_version="v1")[0]
    n = 16
    small = ep.frames[:n].reshape(n, 32, 2, 32, 2, 3).mean(axis=(2, 4)).round().astype(np.uint8)
    ep = replace(ep, frames=small, actions=ep.actions[:n])
    cfg = replace(TINY, image_size=(32, 32), context_noise=0.0)
    ctx, act, tgt = ChunkWindows([ep], 8, cfg.memory_frames).batch(np.random.default_rng(123), 32)

    def fixed_batch_loss(wm: PixelWorldModel) -> float:
        a = (torch.from_numpy(act) - wm._mean) / wm._std
        with torch.no_grad():
            x, y, g = frames_to_tensor(ctx), frames_to_tensor(tgt), torch.Generator().manual_seed(0)
            return float(flow_loss(wm.net, x, y, a, 0.0, g))

    torch.manual_seed(0)
    before = fixed_batch_loss(PixelWorldModel(ChunkDenoiser(cfg)))
    train = TrainConfig(steps=100, batch_size=8, lr=3e-3, warmup_steps=10, log_every=10, checkpoint_every=10**6)
    res = fit_world_model([ep], tmp_path / "wm", config=cfg, train=train, progress=False)
    after = fixed_batch_loss(res.model)
    assert after < 0.35 * before, (before, after, res.losses)
    res.model.sampling_steps = 1
    fake = replay(res.model, [ep])[0]
    real = ep.frames[1:]
    assert psnr(fake, real).mean() > psnr(copy_baseline([ep])[0], real).mean() + 1.0


def test_store_training_finetunes_on_one_policy_version(store: object, tmp_path: Path) -> None:
    base = train_world_model(store, tmp_path / "base", preset="tiny", steps=2)
    ft = train_world_model(store, tmp_path / "ft", policy_version="v2", steps=2, finetune_from=tmp_path / "base")
    manifest = json.loads((tmp_path / "ft" / "manifest.json").read_text())
    v2 = [e.episode_id for e in load_episodes(store, policy_version="v2")]
    assert manifest["dataset"]["ids"] == sorted(v2) and manifest["run"]["finetune_from"] == str(tmp_path / "base")
    assert ft.config == base.config  # architecture and action statistics come from the parent
    with pytest.raises(ValueError, match="no complete episodes"):
        train_world_model(store, tmp_path / "none", policy_version="v9", steps=1)


def test_held_out_split_keeps_every_task_and_outcome() -> None:
    eps = [replace(counting_episode(4, eid=f"{t}{i}"), task=t, success=i % 2 == 0) for t in "ab" for i in range(8)]
    train, held = split_held_out(eps, 0.25, seed=0)
    assert len(train) + len(held) == 16 and not {e.episode_id for e in train} & {e.episode_id for e in held}
    assert {(e.task, e.success) for e in held} == {("a", True), ("a", False), ("b", True), ("b", False)}
    assert split_held_out(eps, 0.25, seed=0)[1] == held
    only_b = split_held_out([e for e in eps if e.task == "b"], 0.25, seed=0)[1]
    assert only_b == [e for e in held if e.task == "b"]  # a task filter keeps the same test episodes


@pytest.mark.parametrize("moved", [0, 1, 3, 4])
def test_a_checkpoint_write_killed_during_its_swap_is_finished_on_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moved: int
) -> None:
    """The swap moves the new files in one by one and the manifest last: a kill after ``moved`` of them leaves no
    manifest in the folder; ``finish_interrupted_write`` completes the swap and the new checkpoint reads back."""
    import os

    from trainer.world_model import checkpoint as ck

    old, new = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(new.parameters())
    new(torch.ones(1, 3)).sum().backward()
    opt.step()
    ck.write_model_dir(tmp_path / "ckpt", old, {"v": 1}, kind="world-model", optimizer=opt, train_state={"step": 2})
    real_replace, calls = os.replace, []

    def killed(src: object, dst: object) -> None:
        if len(calls) == moved:
            raise KeyboardInterrupt("SIGKILL")
        calls.append(src)
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(ck.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        ck.write_model_dir(tmp_path / "ckpt", new, {"v": 2}, kind="world-model", optimizer=opt, train_state={"step": 4})
    monkeypatch.setattr(ck.os, "replace", real_replace)
    with pytest.raises(FileNotFoundError):
        ck.read_model_dir(tmp_path / "ckpt", "world-model")
    assert ck.finish_interrupted_write(tmp_path / "ckpt")
    weights, config, _ = ck.read_model_dir(tmp_path / "ckpt", "world-model")
    assert config == {"v": 2} and torch.equal(weights["weight"], new.weight.detach())
    assert json.loads((tmp_path / "ckpt" / "train_state.json").read_text())["step"] == 4
    assert not (tmp_path / "ckpt.tmp").exists() and not ck.finish_interrupted_write(tmp_path / "ckpt")


def test_the_frame_size_comes_from_the_episodes(tmp_path: Path) -> None:
    """A fresh model takes its frame size from the episodes, not from the preset; a fine-tune on frames of
    another size, or episodes of mixed sizes, are refused with the sizes named."""
    ep = counting_episode(12, eid="a")
    small = RecordedEpisode("s", "count", "v0", ep.frames[:, :32, :48].copy(), ep.actions, True)
    train = TrainConfig(steps=1, batch_size=2, log_every=1, warmup_steps=1)
    fresh = fit_world_model([small], tmp_path / "small", config=TINY, train=train, progress=False)
    assert tuple(fresh.model.image_size) == (32, 48) != tuple(TINY.image_size)
    with pytest.raises(ValueError, match="frames are 64x64, the world model's 32x48"):
        fit_world_model([ep], tmp_path / "ft", train=train, finetune_from=fresh.model, progress=False)
    with pytest.raises(ValueError, match="differ in size"):
        fit_world_model([ep, small], tmp_path / "mixed", config=TINY, train=train, progress=False)


def test_world_models_load_by_the_kind_their_folder_names(tmp_path: Path) -> None:
    from trainer.world_model import load_world_model, register_world_model
    from trainer.world_model.kinds import WORLD_MODELS

    model = PixelWorldModel(ChunkDenoiser(TINY))
    model.save(tmp_path / "wm")
    loaded = load_world_model(tmp_path / "wm", seed=3)
    assert isinstance(loaded, PixelWorldModel) and loaded.seed == 3

    @register_world_model("test-latent")
    class Latent:  # another kind plugs in by its decorator alone
        @classmethod
        def load(cls, path: object, *, sampling_steps: int | None = None, seed: int = 0) -> Latent:
            return cls()

    try:
        manifest = json.loads((tmp_path / "wm" / "manifest.json").read_text())
        (tmp_path / "wm" / "manifest.json").write_text(json.dumps({**manifest, "kind": "test-latent"}))
        assert isinstance(load_world_model(tmp_path / "wm"), Latent)
        (tmp_path / "wm" / "manifest.json").write_text(json.dumps({**manifest, "kind": "reward-model"}))
        with pytest.raises(ValueError, match="holds a 'reward-model', not a world model"):
            load_world_model(tmp_path / "wm")
    finally:
        WORLD_MODELS.pop("test-latent")
