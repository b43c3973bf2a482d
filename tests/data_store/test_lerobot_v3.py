"""LeRobotDataset v3.0 import (a dataset lerobot 0.4.4 itself wrote) and export, and the round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from episode_helpers import small_spec, step

from data_store.episodes import EpisodeStore
from data_store.lerobot_v3 import LeRobotFormatError, export_lerobot, import_lerobot
from tests.conftest import FIXTURES, need

METAWORLD = FIXTURES / "lerobot_v3_metaworld"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> EpisodeStore:
    need(METAWORLD.is_dir(), f"the LeRobot fixture at {METAWORLD}")
    store = EpisodeStore(tmp_path_factory.mktemp("imported"))
    import_lerobot(METAWORLD, store)
    return store


def test_import_fixture(imported: EpisodeStore) -> None:
    eps = imported.episodes()
    assert [e.length for e in eps] == [60, 60, 58, 60]
    assert [e.instruction for e in eps] == ["close the drawer"] * 2 + ["push the puck to the goal"] * 2
    assert [e.success for e in eps] == ["false", "false", "true", "false"]
    assert all(e.status == "complete" and e.fps == 10.0 for e in eps)
    data = pq.read_table(METAWORLD / "data" / "chunk-000" / "file-000.parquet").to_pydict()
    actions = np.asarray(data["action"], np.float32)
    states = np.asarray(data["observation.state"], np.float32)
    start = 0
    for e in eps:
        r = imported.open(e.episode_id)
        assert r.spec.cameras == {"corner": (64, 64)} and r.spec.action_names == ("dx", "dy", "dz", "grip")
        assert np.array_equal(r.actions(), actions[start : start + e.length])
        assert np.array_equal(r.states(), states[start : start + e.length])
        assert np.allclose(r.timestamps(), np.arange(e.length) / 10.0, atol=1e-6)
        frames = r.images("corner")
        assert frames.shape == (e.length, 64, 64, 3)
        assert 40 < frames.mean() < 200 and frames.std() > 10  # real rendered scenes, not blank frames
        assert np.abs(np.diff(frames.astype(np.int16), axis=0)).mean() < 20  # consecutive frames, in order
        start += e.length
    # the first frame of each episode is the reset scene, not the previous episode's last frame
    first = [imported.open(e.episode_id).images("corner")[0] for e in eps]
    last0 = imported.open(eps[0].episode_id).images("corner")[-1]
    assert psnr(first[1], first[0]) > psnr(first[1], last0)


def test_round_trip_of_fixture(imported: EpisodeStore, tmp_path: Path) -> None:
    out = export_lerobot(imported, imported.episodes(), tmp_path / "export")
    again = EpisodeStore(tmp_path / "again")
    import_lerobot(out, again)
    for a, b in zip(imported.episodes(), again.episodes(), strict=True):
        ra, rb = imported.open(a.episode_id), again.open(b.episode_id)
        assert (b.length, b.instruction, b.task, b.success) == (a.length, a.instruction, a.task, a.success)
        assert np.array_equal(ra.actions(), rb.actions()) and np.array_equal(ra.states(), rb.states())
        assert psnr(ra.images("corner"), rb.images("corner")) > 30  # AV1 at CRF 30
        assert b.meta["exported_episode_id"] == a.episode_id


def test_export_layout_matches_lerobot(imported: EpisodeStore, tmp_path: Path) -> None:
    """Same files, info.json keys and features, parquet schemas and episode columns as lerobot's own dataset."""
    import av

    out = export_lerobot(imported, imported.episodes(), tmp_path / "export")
    ref_info = json.loads((METAWORLD / "meta" / "info.json").read_text())
    info = json.loads((out / "meta" / "info.json").read_text())
    assert set(info) == set(ref_info)
    assert info["features"] == ref_info["features"]
    for key in ("codebase_version", "fps", "data_path", "video_path", "total_episodes", "total_frames", "total_tasks"):
        assert info[key] == ref_info[key], key
    rel = lambda root: sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())  # noqa: E731
    assert rel(out) == rel(METAWORLD)
    for part in ("data/chunk-000/file-000.parquet", "meta/episodes/chunk-000/file-000.parquet"):
        ref, ours = pq.read_schema(METAWORLD / part), pq.read_schema(out / part)
        for field in ref:
            assert ours.field(field.name).type == field.type, (part, field.name)
    assert (
        pq.read_table(out / "meta/tasks.parquet").to_pydict()
        == pq.read_table(METAWORLD / "meta/tasks.parquet").to_pydict()
    )
    episodes = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pydict()
    ref_eps = pq.read_table(METAWORLD / "meta/episodes/chunk-000/file-000.parquet").to_pydict()
    key = "videos/observation.images.corner"
    for col in ("length", "dataset_from_index", "dataset_to_index", f"{key}/from_timestamp", f"{key}/to_timestamp"):
        assert episodes[col] == pytest.approx(ref_eps[col]), col
    stats = json.loads((out / "meta" / "stats.json").read_text())
    assert set(stats) == set(json.loads((METAWORLD / "meta" / "stats.json").read_text()))
    assert np.asarray(stats["observation.images.corner"]["mean"]).shape == (3, 1, 1)
    actions = np.asarray(pq.read_table(out / "data/chunk-000/file-000.parquet")["action"].to_pylist())
    assert np.allclose(stats["action"]["mean"], actions.mean(axis=0), atol=1e-6)  # per-episode stats pooled
    assert np.allclose(stats["action"]["std"], actions.std(axis=0), atol=1e-6)
    assert stats["action"]["min"] == actions.min(axis=0).tolist() and stats["action"]["count"] == [238]
    frames = np.concatenate([imported.open(e.episode_id).images("corner") for e in imported.episodes()])
    assert np.allclose(np.ravel(stats["observation.images.corner"]["mean"]), frames.mean(axis=(0, 1, 2)) / 255)
    with av.open(str(out / "videos/observation.images.corner/chunk-000/file-000.mp4")) as c:
        s = c.streams.video[0]
        assert (s.codec_context.name, s.codec_context.pix_fmt) in {("libdav1d", "yuv420p"), ("av1", "yuv420p")}
        times = [float(f.pts * f.time_base) for f in c.decode(s)]
    assert len(times) == 238 and np.allclose(times, np.arange(238) / 10.0)


def test_export_from_store_round_trip(tmp_path: Path) -> None:
    """Episodes recorded here (two tasks, labels incl. unknown) survive export -> import."""
    spec = small_spec(size=32)
    store = EpisodeStore(tmp_path / "store")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32]
    for task, n, success in [("drawer-close", 12, True), ("push", 9, None), ("push", 7, False)]:
        w = store.create(spec, task=task, instruction=f"please {task}", policy_version="v7")
        for t in range(n):
            obs, _ = step(spec, t)
            blob = 80 * np.exp(-((xx - 8 - t) ** 2 + (yy - 16) ** 2) / 20.0)  # a moving object on a smooth scene
            scene = np.stack([xx * 5 + blob, yy * 5 + 40, 100 + blob], -1)
            obs.images["corner"] = scene.astype(np.uint8)
            w.append(obs, rng.uniform(-1, 1, 4).astype(np.float32))
        w.finish(success)
    out = export_lerobot(store, store.episodes(), tmp_path / "export")
    again = EpisodeStore(tmp_path / "again")
    import_lerobot(out, again)
    src, dst = store.episodes(), again.episodes()
    assert [(e.task, e.instruction, e.length, e.success, e.policy_version) for e in dst] == [
        (e.task, e.instruction, e.length, e.success, e.policy_version) for e in src
    ]
    for a, b in zip(src, dst, strict=True):
        ra, rb = store.open(a.episode_id), again.open(b.episode_id)
        assert np.array_equal(ra.actions(), rb.actions())
        assert psnr(ra.images("corner"), rb.images("corner")) > 30


def test_export_refuses_mixed_specs_and_non_empty_dir(tmp_path: Path) -> None:
    store = EpisodeStore(tmp_path / "store")
    for size in (16, 32):
        spec = small_spec(size=size)
        w = store.create(spec, task="t", instruction="i")
        w.append(*step(spec, 0))
        w.finish(True)
    with pytest.raises(LeRobotFormatError, match="different RobotSpec"):
        export_lerobot(store, store.episodes(), tmp_path / "out")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(LeRobotFormatError, match="not empty"):
        export_lerobot(store, store.episodes()[:1], tmp_path / "full")


def test_import_rejects_other_versions(tmp_path: Path) -> None:
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "info.json").write_text(json.dumps({"codebase_version": "v2.1"}))
    with pytest.raises(LeRobotFormatError, match=r"v2\.1"):
        import_lerobot(tmp_path, EpisodeStore(tmp_path / "store"))
    with pytest.raises(LeRobotFormatError, match=r"no meta/info\.json"):
        import_lerobot(tmp_path / "nothing", EpisodeStore(tmp_path / "store"))
