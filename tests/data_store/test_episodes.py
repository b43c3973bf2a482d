"""EpisodeStore / EpisodeWriter / EpisodeReader on a real Zarr store: round trip, validation, lifecycle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from episode_helpers import check_steps, small_spec, step

from data_store.episodes import EpisodeNotFound, EpisodeStore, new_episode_id
from data_store.schema import RobotSpec, SchemaError


def record(store: EpisodeStore, spec: RobotSpec, n: int, **kw: object) -> str:
    w = store.create(spec, task=str(kw.pop("task", "drawer-close")), instruction="close the drawer", **kw)  # type: ignore[arg-type]
    for t in range(n):
        w.append(*step(spec, t))
    w.finish(True)
    return w.episode_id


def test_round_trip_with_depth(store_dir: Path) -> None:
    spec = small_spec(depth=True)
    store = EpisodeStore(store_dir)
    w = store.create(spec, task="drawer-close", instruction="close the drawer", policy_version="v3", meta={"seed": 7})
    for t in range(70):  # more than one growth block
        w.append(*step(spec, t))
    info = w.finish(True, reason="success")
    assert (info.status, info.success, info.length, info.reason) == ("complete", "true", 70, "success")

    r = EpisodeStore(store_dir).open(w.episode_id)
    assert len(r) == 70 and r.spec == spec
    assert r.info.policy_version == "v3" and r.info.meta == {"seed": 7} and r.info.instruction == "close the drawer"
    images = r.images("corner")
    assert images.shape == (70, 16, 16, 3) and images.dtype == np.uint8
    assert np.array_equal(images[:, 0, 0, 0], np.arange(70) + 1)
    depth = r.depth("corner")
    assert depth.dtype == np.uint16 and np.array_equal(depth[:, 3, 3], (np.arange(70) + 1) * 10)
    assert r.states().dtype == np.float32 and np.array_equal(r.states()[:, 0], np.arange(70))
    assert np.array_equal(r.actions()[:, 2], (np.arange(70) / 1000.0).astype(np.float32))
    assert r.timestamps().dtype == np.float64 and r.timestamps()[-1] == pytest.approx(6.9)
    obs = r.observation(42)
    assert obs.images["corner"][0, 0, 0] == 43 and obs.depth is not None and obs.depth["corner"][0, 0] == 430
    assert obs.instruction == "close the drawer"
    # arrays are trimmed to the length on finish
    import zarr

    assert zarr.open_group(str(store_dir / w.episode_id), mode="r")["images/corner"].shape[0] == 70


@pytest.mark.parametrize(
    ("breaks", "field_and_expected"),
    [
        (lambda o, a: o.images.pop("corner"), "images['corner']: missing (expected uint8 [16, 16, 3])"),
        (lambda o, a: o.images.update(corner=o.images["corner"][:8]), "images['corner']: expected shape [16, 16, 3]"),
        (lambda o, a: o.images.update(corner=o.images["corner"].astype(np.float32)), "expected dtype uint8"),
        (lambda o, a: setattr(o, "state", o.state[:3]), "state: expected shape [4]"),
        (lambda o, a: setattr(o, "state", o.state.astype(np.float64)), "state: expected dtype float32"),
        (lambda o, a: setattr(o, "timestamp", float("nan")), "timestamp: expected a finite float"),
        (lambda o, a: setattr(o, "depth", None), "depth['corner']: missing (expected uint16 [16, 16])"),
    ],
)
def test_bad_observation_names_field_and_writes_nothing(store_dir: Path, breaks, field_and_expected: str) -> None:
    spec = small_spec(depth=True)
    store = EpisodeStore(store_dir)
    w = store.create(spec, task="t", instruction="i")
    w.append(*step(spec, 0))
    obs, action = step(spec, 99)
    breaks(obs, action)
    with pytest.raises(SchemaError) as e:
        w.append(obs, action)
    assert field_and_expected in str(e.value)
    w.append(*step(spec, 1))  # the episode is still consistent and accepts good steps
    w.finish(None)
    r = store.open(w.episode_id)
    assert len(r) == 2 and list(r.images("corner")[:, 0, 0, 0]) == [1, 2] and list(r.states()[:, 0]) == [0, 1]


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (np.zeros(3, np.float32), "action: expected shape [4], got [3]"),
        (np.zeros(4, np.float64), "action: expected dtype float32, got float64"),
        ([0.0, 0.0, 0.0, 0.0], "action: expected numpy array float32 [4], got list"),
    ],
)
def test_bad_action_names_field(store_dir: Path, spec: RobotSpec, action: object, message: str) -> None:
    store = EpisodeStore(store_dir)
    w = store.create(spec, task="t", instruction="i")
    obs, _ = step(spec, 0)
    with pytest.raises(SchemaError, match=message.replace("[", r"\[").replace("]", r"\]")):
        w.append(obs, action)  # type: ignore[arg-type]
    assert len(w) == 0
    info = w.abort("bad input")
    assert info.length == 0 and store.open(w.episode_id).actions().shape == (0, 4)


def test_context_manager_aborts_on_exception(store_dir: Path, spec: RobotSpec) -> None:
    store = EpisodeStore(store_dir)
    with pytest.raises(RuntimeError, match="e-stop"), store.create(spec, task="t", instruction="i") as w:
        w.append(*step(spec, 0))
        raise RuntimeError("e-stop pressed")
    info = store.info(w.episode_id)
    assert info.status == "aborted" and info.reason == "RuntimeError: e-stop pressed" and info.length == 1
    with pytest.raises(RuntimeError, match="already aborted"):
        w.append(*step(spec, 1))


def test_label_and_filters(store_dir: Path, spec: RobotSpec) -> None:
    store = EpisodeStore(store_dir)
    a = record(store, spec, 3, task="drawer-close", policy_version="v1")
    b = record(store, spec, 2, task="push", policy_version="v2", robot_id="arm-1")
    w = store.create(spec, task="push", instruction="push it")
    w.append(*step(spec, 0))
    w.finish(None)
    assert [i.episode_id for i in store.episodes()] == [a, b, w.episode_id]
    assert [i.episode_id for i in store.episodes(task="push")] == [b, w.episode_id]
    assert [i.episode_id for i in store.episodes(success=True)] == [a, b]
    assert [i.episode_id for i in store.episodes(success="unknown")] == [w.episode_id]
    assert [i.episode_id for i in store.episodes(policy_version="v2", robot_id="arm-1")] == [b]
    store.label(w.episode_id, False)
    assert store.info(w.episode_id).success == "false"
    assert [i.episode_id for i in store.episodes(success=False)] == [w.episode_id]
    assert store.info(w.episode_id).meta["labelled_by"] == "operator"


def test_label_refused_while_recording(store_dir: Path, spec: RobotSpec) -> None:
    store = EpisodeStore(store_dir)
    w = store.create(spec, task="t", instruction="i")
    with pytest.raises(ValueError, match="still recording"):
        store.label(w.episode_id, True)


def test_unknown_episode(store_dir: Path) -> None:
    store = EpisodeStore(store_dir)
    with pytest.raises(EpisodeNotFound, match="no episode 'nope'"):
        store.open("nope")
    with pytest.raises(EpisodeNotFound):
        store.info("../etc")


def test_ids_sort_by_time_and_are_unique() -> None:
    ids = [new_episode_id(1_700_000_000.0 + i * 0.001) for i in range(50)]
    assert ids == sorted(ids) and len(set(ids)) == 50
    assert ids[0].startswith("20231114T221320.000-")


def test_bad_camera_name_refused(store_dir: Path) -> None:
    spec = RobotSpec(action_dim=1, state_dim=1, action_low=(0.0,), action_high=(1.0,), cameras={"a/b": (4, 4)})
    with pytest.raises(SchemaError, match="camera name 'a/b'"):
        EpisodeStore(store_dir).create(spec, task="t", instruction="i")


def test_buffered_writer_round_trip(store_dir: Path) -> None:
    spec = small_spec(depth=True)
    store = EpisodeStore(store_dir)
    w = store.create(spec, task="t", instruction="i", buffer_s=0.5)
    obs, action = step(spec, 0)
    for t in range(100):
        new, act = step(spec, t)
        obs.images["corner"][...] = new.images["corner"]  # the caller reuses its buffers: append must copy
        obs.state[...] = new.state
        assert obs.depth is not None and new.depth is not None
        obs.depth["corner"][...] = new.depth["corner"]
        obs.timestamp = new.timestamp
        action[...] = act
        w.append(obs, action)
    assert len(w) == 100
    info = w.finish(True)
    assert info.length == 100 and info.status == "complete"
    check_steps(store.open(w.episode_id))


def test_buffered_writer_failure_aborts(store_dir: Path, spec: RobotSpec) -> None:
    store = EpisodeStore(store_dir)
    w = store.create(spec, task="t", instruction="i", buffer_s=1.0)
    w.append(*step(spec, 0))
    w.finish(None)
    assert store.info(w.episode_id).length == 1
    import shutil

    w2 = store.create(spec, task="t", instruction="i", buffer_s=1.0)
    chunks = store_dir / w2.episode_id / "state" / "c"
    shutil.rmtree(chunks, ignore_errors=True)
    chunks.write_text("not a folder")  # the state array's chunks can no longer be written
    w2.append(*step(spec, 0))
    info = w2.finish(True)
    assert info.status == "aborted" and info.reason is not None and "writing a step failed" in info.reason
