"""The GPU presets take training steps on CUDA: the ``base`` world model at 128² and 256², the ``base`` policy
(SigLIP-like vision at 128², hashed-word instructions here: the frozen MiniLM encoder is a download). The steps are
the trainers' own (``world_model.train._train_step``, ``sft.sft_loss``), then one imagined chunk and one sampled
action chunk on the device. Skipped without a GPU; where one is lent:

    python -m pytest -q tests/trainer/test_cuda_presets.py

The same code on the CPU with the tiny presets runs everywhere (the first case of each test)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data_store.schema import Observation, RobotSpec
from trainer.sft import sft_loss
from trainer.world_model import PRESETS, RecordedEpisode, TrainConfig
from trainer.world_model.data import ChunkWindows
from trainer.world_model.flow import sample_chunk
from trainer.world_model.network import ChunkDenoiser
from trainer.world_model.train import _train_step
from vla.model import VLAConfig, VLAPolicy
from vla.norm_stats import NormStats

GPU = "cuda"
CASES = [("cpu", "tiny", 64), (GPU, "base", 128), (GPU, "base", 256)]


def on(device: str) -> torch.device:
    if device == GPU and not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU: python -m pytest -q tests/trainer/test_cuda_presets.py where one is lent")
    return torch.device(device)


@pytest.mark.parametrize(("device", "preset", "size"), CASES)
def test_world_model_trains_and_imagines_on_the_device(device: str, preset: str, size: int) -> None:
    dev = on(device)
    cfg = PRESETS[preset].replace(image_size=(size, size))
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(40, size, size, 3), dtype=np.uint8)
    episode = RecordedEpisode("e", "t", "v", frames, rng.uniform(-1, 1, (40, cfg.action_dim)).astype(np.float32), True)
    windows = ChunkWindows([episode], cfg.chunk_size, cfg.memory_frames)
    net = ChunkDenoiser(cfg).to(dev).train()
    before = [p.detach().clone() for p in net.parameters()]
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    losses = [_train_step(net, opt, windows, cfg, TrainConfig(steps=3, batch_size=2), step) for step in range(3)]
    assert all(np.isfinite(losses)), losses
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    net.eval()
    context = torch.zeros((2, cfg.context_frames, 3, size, size), device=dev)
    actions = torch.zeros((2, cfg.chunk_size, cfg.action_dim), device=dev)
    chunk = sample_chunk(net, context, actions, cfg.sampling_steps)
    assert chunk.device.type == dev.type and chunk.shape == (2, cfg.chunk_size, 3, size, size)
    assert torch.isfinite(chunk).all()


@pytest.mark.parametrize(("device", "preset"), [("cpu", "tiny"), (GPU, "base")])
def test_policy_trains_and_samples_on_the_device(device: str, preset: str) -> None:
    dev = on(device)
    config = VLAConfig.preset(preset, language="hash")
    size = config.image_size
    spec = RobotSpec(4, 4, (-1.0,) * 4, (1.0,) * 4, cameras={"corner4": (size, size)})
    policy = VLAPolicy(config, NormStats.from_spec(spec), spec).to(dev).train()
    rng = np.random.default_rng(0)
    k = config.chunk_size
    batch = (
        rng.integers(0, 256, size=(4, size, size, 3), dtype=np.uint8),
        rng.normal(size=(4, 4)).astype(np.float32),
        rng.uniform(-1, 1, size=(4, k, 4)).astype(np.float32),
        np.ones((4, k), dtype=bool),
        np.zeros(4, dtype=np.int64),
    )
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-4)
    for _ in range(3):
        loss, _ = sft_loss(policy, batch, ["open the window"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert torch.isfinite(loss)
    policy.eval()
    obs = Observation({"corner4": batch[0][0]}, batch[1][0], "open the window", timestamp=0.0)
    actions, tokens, logprob = policy.sample([obs], temperature=1.0)
    assert actions.shape == (1, k, 4) and tokens.device.type == dev.type and torch.isfinite(logprob).all()
