"""`flywheel data ...` through typer's CliRunner against a real store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from episode_helpers import small_spec, step
from typer.testing import CliRunner

from data_store.cli import app
from data_store.contact_sheet import read_png
from data_store.episodes import EpisodeStore
from tests.conftest import FIXTURES, need

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


@pytest.fixture
def store(store_dir: Path) -> EpisodeStore:
    s = EpisodeStore(store_dir)
    spec = small_spec(size=16)
    for task, n, success in [("drawer-close", 5, True), ("push", 4, False), ("push", 3, None)]:
        w = s.create(spec, task=task, instruction=f"do {task}", policy_version="v1" if task == "push" else "v0")
        for t in range(n):
            w.append(*step(spec, t))
        w.finish(success)
    return s


def test_ls_and_filters(store: EpisodeStore) -> None:
    code, out = invoke("ls", "--store", str(store.root))
    assert code == 0 and "3 episodes" in out
    assert all(e.episode_id in out for e in store.episodes())
    code, out = invoke("ls", "--store", str(store.root), "--task", "push", "--success", "unknown")
    assert code == 0 and "1 episodes" in out and store.episodes()[2].episode_id in out
    code, out = invoke("ls", "--store", str(store.root), "--policy", "v0")
    assert code == 0 and "1 episodes" in out and store.episodes()[0].episode_id in out
    code, out = invoke("ls", "--store", str(store.root), "--since", "2000-01-01", "--until", "2001-01-01")
    assert code == 0 and "0 episodes" in out


def test_store_from_environment(store: EpisodeStore) -> None:
    result = runner.invoke(app, ["ls"], env={"FLYWHEEL_STORE": str(store.root), "COLUMNS": "200"})
    assert result.exit_code == 0 and "3 episodes" in result.output


def test_show_with_contact_sheet(store: EpisodeStore, tmp_path: Path) -> None:
    first = store.episodes()[0]
    code, out = invoke("show", first.episode_id, "--store", str(store.root), "--frames", str(tmp_path / "s.png"))
    assert code == 0, out
    assert "do drawer-close" in out and "5 (0.5 s at 10 fps)" in out and "corner 16x16" in out
    sheet = read_png(tmp_path / "s.png")
    assert sheet.shape == (18, 5 * 18, 3)  # 5 frames of 16x16 with 2-pixel gaps, one row
    assert [int(sheet[0, i * 18, 0]) for i in range(5)] == [1, 2, 3, 4, 5]  # pixel(t) of each step


def test_label(store: EpisodeStore) -> None:
    unknown = store.episodes(success="unknown")[0].episode_id
    code, out = invoke("label", unknown, "--failure", "--store", str(store.root))
    assert code == 0 and store.info(unknown).success == "false"
    code, out = invoke("label", unknown, "--store", str(store.root))
    assert code == 2 and "--success or --failure" in out


def test_rebuild_catalog(store: EpisodeStore) -> None:
    (store.root / "catalog.sqlite").unlink()
    for extra in ("-wal", "-shm"):
        (store.root / f"catalog.sqlite{extra}").unlink(missing_ok=True)
    code, out = invoke("rebuild-catalog", "--store", str(store.root))
    assert code == 0 and "3 episodes" in out
    assert len(EpisodeStore(store.root).episodes()) == 3


def test_clear_errors(store: EpisodeStore, tmp_path: Path) -> None:
    code, out = invoke("show", "20990101T000000.000-000000", "--store", str(store.root))
    assert code == 1 and "no episode '20990101T000000.000-000000'" in out and "Traceback" not in out
    code, out = invoke("ls", "--store", str(tmp_path / "missing"))
    assert code == 1 and "no episode store at" in out
    code, out = invoke("ls", "--store", str(store.root), "--since", "yesterday")
    assert code == 2 and "ISO date" in out
    code, out = invoke("export", "--out", str(tmp_path / "x"), "--store", str(store.root), "--task", "nothing")
    assert code == 1 and "no episodes match" in out


def test_export_import_lerobot(store: EpisodeStore, tmp_path: Path) -> None:
    out_dir = tmp_path / "lerobot"
    code, out = invoke("export", "--format", "lerobot", "--out", str(out_dir), "--store", str(store.root))
    assert code == 0, out
    assert "3 episodes, 12 frames" in out and (out_dir / "meta" / "info.json").is_file()
    code, out = invoke("export", "--out", str(out_dir), "--store", str(store.root))
    assert code == 1 and "not empty" in out
    again = tmp_path / "again"
    code, out = invoke("import", str(out_dir), "--store", str(again))
    assert code == 0 and "imported 3 episodes" in out
    eps = EpisodeStore(again).episodes()
    assert [e.length for e in eps] == [5, 4, 3] and [e.success for e in eps] == ["true", "false", "unknown"]
    code, out = invoke("import", str(tmp_path / "nowhere"), "--store", str(again))
    assert code == 1 and "no dataset folder" in out


def test_import_fixture_by_id_then_export_selected(tmp_path: Path) -> None:
    fixture = FIXTURES / "lerobot_v3_metaworld"
    need(fixture.is_dir(), f"the LeRobot fixture at {fixture}")
    code, out = invoke("import", str(fixture), "--store", str(tmp_path / "s"))
    assert code == 0 and "imported 4 episodes" in out
    s = EpisodeStore(tmp_path / "s")
    chosen = s.episodes(success=True)[0].episode_id
    code, out = invoke("export", chosen, "--out", str(tmp_path / "one"), "--store", str(s.root))
    assert code == 0 and "1 episodes, 58 frames" in out


def test_export_mcap_calls_the_mcap_exporter(store: EpisodeStore, tmp_path: Path) -> None:
    import importlib.util

    need(importlib.util.find_spec("rosbags") is not None, "rosbags (pip install 'vla-flywheel[ros]')")
    code, out = invoke("export", "--format", "mcap", "--out", str(tmp_path / "bags"), "--store", str(store.root))
    assert code == 0, out
    assert sorted(p.name for p in (tmp_path / "bags").iterdir()) == [e.episode_id for e in store.episodes()]
    assert np.all([any(p.glob("*.mcap")) for p in (tmp_path / "bags").iterdir()])
