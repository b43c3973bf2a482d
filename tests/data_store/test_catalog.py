"""The SQLite catalog: filters, time ranges, and that it is only an index the store can rebuild."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from episode_helpers import small_spec, step

from data_store.catalog import CATALOG_FILE, Catalog
from data_store.episodes import EpisodeStore


def fill(store: EpisodeStore) -> list[str]:
    spec = small_spec()
    ids = []
    rows = [("drawer-close", "v1", "sim-0", True), ("push", "v1", "sim-1", False), ("push", "v2", "sim-0", None)]
    for task, policy, robot, success in rows:
        w = store.create(spec, task=task, instruction=task, policy_version=policy, robot_id=robot)
        for t in range(3):
            w.append(*step(spec, t))
        w.finish(success)
        ids.append(w.episode_id)
        time.sleep(0.01)  # distinct start times
    return ids


def test_filters_combine(store_dir: Path) -> None:
    store = EpisodeStore(store_dir)
    a, b, c = fill(store)
    ids = lambda **kw: [i.episode_id for i in store.episodes(**kw)]  # noqa: E731
    assert ids() == [a, b, c]
    assert ids(task=["push", "drawer-close"]) == [a, b, c]
    assert ids(task="push", policy_version="v1") == [b]
    assert ids(robot_id="sim-0", success="unknown") == [c]
    assert ids(status=["aborted", "recording"]) == []
    started_b = store.info(b).started_at
    assert ids(since=started_b) == [b, c]
    assert ids(until=started_b) == [a]
    assert ids(since=datetime.fromtimestamp(started_b, tz=UTC)) == [b, c]
    assert ids(until=datetime(2000, 1, 1, tzinfo=UTC)) == []
    with pytest.raises(ValueError, match="expected true, false or unknown"):
        store.episodes(success="maybe")


def test_rebuild_from_store_alone(store_dir: Path) -> None:
    store = EpisodeStore(store_dir)
    fill(store)
    store.label(store.episodes()[2].episode_id, True)
    before = store.episodes()
    for f in store_dir.glob(CATALOG_FILE + "*"):
        f.unlink()
    fresh = EpisodeStore(store_dir, recover=False)
    assert fresh.episodes() == []  # the index is gone ...
    assert fresh.rebuild_catalog() == 3  # ... and comes back from the Zarr attributes alone
    assert fresh.episodes() == before


def test_open_indexes_copied_in_and_drops_deleted_episodes(tmp_path: Path) -> None:
    src = EpisodeStore(tmp_path / "robot-a")
    a, b, _ = fill(src)
    dst = EpisodeStore(tmp_path / "central")
    shutil.copytree(src.root / a, dst.root / a)  # e.g. rsync'd from a robot
    shutil.copytree(src.root / b, dst.root / b)
    dst = EpisodeStore(dst.root)
    assert [i.episode_id for i in dst.episodes()] == [a, b]
    shutil.rmtree(dst.root / a)
    assert [i.episode_id for i in EpisodeStore(dst.root).episodes()] == [b]


def test_live_recording_is_listed_with_its_published_length(store_dir: Path) -> None:
    store = EpisodeStore(store_dir)
    spec = small_spec()
    w = store.create(spec, task="t", instruction="i")
    for t in range(4):
        w.append(*step(spec, t))
    [info] = store.episodes(status="recording")
    assert info.length == 4  # read from the group, not the catalog row written at create
    w.finish(True)
    assert store.episodes(status="recording") == []


def test_catalog_rows_round_trip(tmp_path: Path) -> None:
    store = EpisodeStore(tmp_path / "s")
    fill(store)
    catalog = Catalog(tmp_path / "other.sqlite")
    assert catalog.replace_all(store.episodes()) == 3
    assert catalog.query(limit=2) == store.episodes()[:2]
    first = store.episodes()[0]
    assert catalog.get(first.episode_id) == first and catalog.get("nope") is None
