"""Our LeRobotDataset v3.0 export read by lerobot's own ``LeRobotDataset`` (frames, actions, states, tasks,
episode boundaries, a training dataloader with ``delta_timestamps``), and a dataset lerobot records with its
own API imported into our store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lerobot.datasets.lerobot_dataset import LeRobotDataset

from data_store.episodes import EpisodeStore
from data_store.lerobot_v3 import export_lerobot, import_lerobot
from data_store.schema import Observation, RobotSpec

SIZE = 32
SPEC = RobotSpec(
    action_dim=4,
    state_dim=5,
    action_low=(-1.0,) * 4,
    action_high=(1.0,) * 4,
    cameras={"front": (SIZE, SIZE), "wrist": (SIZE, SIZE)},
    depth_cameras={"front": (SIZE, SIZE)},  # lerobot 0.4 has no depth video: the export leaves depth out
    fps=10.0,
)
EPISODES = [  # task, instruction, steps, success
    ("drawer-close", "close the drawer", 12, True),
    ("button-press", "press the button", 9, False),
    ("drawer-close", "close the drawer", 7, None),
]


def scene(t: int, camera: str) -> np.ndarray:
    """A smooth scene with a blob moving with ``t`` (video codecs keep such images within ~1-2 levels)."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    shift = 0 if camera == "front" else 10
    blob = 90 * np.exp(-((xx - 6 - t - shift) ** 2 + (yy - 16) ** 2) / 20.0)
    return np.stack([xx * 4 + blob, yy * 4 + 40, 120 + blob], -1).clip(0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> EpisodeStore:
    store = EpisodeStore(tmp_path_factory.mktemp("store"))
    rng = np.random.default_rng(0)
    for task, instruction, n, success in EPISODES:
        writer = store.create(SPEC, task=task, instruction=instruction, policy_version="v3")
        for t in range(n):
            obs = Observation(
                images={c: scene(t, c) for c in SPEC.cameras},
                state=rng.normal(size=SPEC.state_dim).astype(np.float32),
                instruction=instruction,
                timestamp=t / SPEC.fps,
                depth={"front": np.full((SIZE, SIZE), 500 + t, np.uint16)},
            )
            writer.append(obs, rng.uniform(-1, 1, SPEC.action_dim).astype(np.float32))
        writer.finish(success)
    return store


@pytest.fixture(scope="module")
def exported(recorded: EpisodeStore, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_lerobot(recorded, recorded.episodes(), tmp_path_factory.mktemp("export") / "ds")


def test_lerobot_loads_our_export_frame_by_frame(recorded: EpisodeStore, exported: Path) -> None:
    dataset = LeRobotDataset("flywheel/export", root=exported)
    ours = recorded.episodes()
    assert dataset.num_episodes == len(ours) == 3
    assert dataset.num_frames == len(dataset) == sum(e.length for e in ours)
    assert dataset.fps == SPEC.fps
    assert set(dataset.meta.camera_keys) == {"observation.images.front", "observation.images.wrist"}
    index = 0
    for episode_index, info in enumerate(ours):
        reader = recorded.open(info.episode_id)
        states, actions = reader.states(), reader.actions()
        frames = {c: reader.images(c) for c in SPEC.cameras}
        for t in range(info.length):
            item = dataset[index]
            assert int(item["episode_index"]) == episode_index and int(item["frame_index"]) == t
            assert int(item["index"]) == index
            assert item["task"] == info.instruction
            assert torch.equal(item["observation.state"], torch.from_numpy(states[t]))
            assert torch.equal(item["action"], torch.from_numpy(actions[t]))
            assert float(item["timestamp"]) == pytest.approx(t / SPEC.fps)
            for camera in SPEC.cameras:
                pixels = item[f"observation.images.{camera}"]  # float [3, H, W] in [0, 1], decoded by torchcodec
                assert tuple(pixels.shape) == (3, SIZE, SIZE)
                image = (pixels.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
                assert psnr(image, frames[camera][t]) > 30, (info.episode_id, t, camera)
            success = bool(item["next.success"])
            assert success == (t == info.length - 1 and info.success == "true")
            index += 1
    # episode boundaries, as lerobot's own metadata has them
    episodes = dataset.meta.episodes
    starts = [int(episodes[i]["dataset_from_index"]) for i in range(3)]
    ends = [int(episodes[i]["dataset_to_index"]) for i in range(3)]
    lengths = [e.length for e in ours]
    assert starts == [0, lengths[0], lengths[0] + lengths[1]] and ends == list(np.cumsum(lengths))
    assert sorted(dataset.meta.tasks.index) == ["close the drawer", "press the button"]


def test_lerobot_training_dataloader_with_delta_timestamps(exported: Path) -> None:
    dt = 1.0 / SPEC.fps
    delta = {"action": [0.0, dt, 2 * dt, 3 * dt], "observation.images.front": [-dt, 0.0], "observation.state": [0.0]}
    dataset = LeRobotDataset("flywheel/export", root=exported, delta_timestamps=delta)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, shuffle=True, num_workers=0, drop_last=True)
    batches = list(loader)
    assert len(batches) == len(dataset) // 4
    batch = batches[0]
    assert tuple(batch["action"].shape) == (4, 4, SPEC.action_dim)
    assert tuple(batch["observation.images.front"].shape) == (4, 2, 3, SIZE, SIZE)
    assert tuple(batch["observation.state"].shape) == (4, 1, SPEC.state_dim)
    # past the end of an episode, lerobot pads and says so; inside, it does not
    pads = torch.cat([b["action_is_pad"] for b in batches])
    assert pads.any() and not pads[:, 0].any()


def test_a_dataset_lerobot_records_imports_with_its_episodes(tmp_path: Path) -> None:
    features = {
        "observation.state": {"dtype": "float32", "shape": (3,), "names": ["x", "y", "z"]},
        "action": {"dtype": "float32", "shape": (2,), "names": ["a", "b"]},
        "observation.images.top": {"dtype": "video", "shape": (SIZE, SIZE, 3), "names": ["height", "width", "rgb"]},
    }
    root = tmp_path / "recorded"
    dataset = LeRobotDataset.create("flywheel/recorded", fps=15, features=features, root=root, use_videos=True)
    rng = np.random.default_rng(1)
    written: list[dict[str, np.ndarray]] = []
    for n, task in [(8, "stack the cups"), (5, "open the box")]:
        actions = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
        states = rng.normal(size=(n, 3)).astype(np.float32)
        images = np.stack([scene(t, "front") for t in range(n)])
        for t in range(n):
            frame = {"observation.state": states[t], "action": actions[t], "observation.images.top": images[t]}
            dataset.add_frame({**frame, "task": task})
        dataset.save_episode()
        written.append({"actions": actions, "states": states, "images": images})
    dataset.finalize()

    store = EpisodeStore(tmp_path / "store")
    ids = import_lerobot(root, store)
    assert len(ids) == 2
    infos = [store.info(i) for i in ids]
    assert [(i.instruction, i.length) for i in infos] == [("stack the cups", 8), ("open the box", 5)]
    assert infos[0].spec.fps == 15 and infos[0].spec.cameras == {"top": (SIZE, SIZE)}
    for info, want in zip(infos, written, strict=True):
        reader = store.open(info.episode_id)
        assert np.array_equal(reader.actions(), want["actions"])
        assert np.array_equal(reader.states(), want["states"])
        assert psnr(reader.images("top"), want["images"]) > 30
