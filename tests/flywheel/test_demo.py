"""`flywheel demo --quick`: every stage of the loop runs for real, at the smallest sizes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from data_store.episodes import EpisodeStore
from flywheel.cli import app


@pytest.mark.slow
def test_quick_demo_runs_the_whole_loop(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    (out / "episodes").mkdir(parents=True)  # an earlier demo's folder (other settings): a rerun starts clean
    (out / "demo.json").write_text('{"demos": "10"}')
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "moved to" in result.output and (tmp_path / "demo.previous" / "demo.json").is_file()

    report = json.loads((out / "report.json").read_text())
    base = report["robot"]["base"]
    assert base["version"].startswith("vla-")
    # the cycle ran each stage; its judge compared candidate and base at the deployment temperature, imagined and
    # on the simulated arm's validation scenes, with intervals and paired tests
    for stage in ("world_model.loss", "reward_model.threshold", "evaluate.imagined_success", "evaluate.sim_success"):
        assert stage in report["cycle_metrics"], sorted(report["cycle_metrics"])
    assert report["cycle_metrics"]["grpo.draws"] >= 1  # GRPO's progress inside its iterations: each imagined batch
    # before GRPO, the base's imagined groups were replayed action for action on the arm (trainer/agreement.py)
    assert 0.0 <= report["cycle_metrics"]["grpo.agreement_outcome_agreement"] <= 1.0
    assert "action-replay agreement" in report["agreement"]
    assert report["deploy_temperature"] == 0.0 and report["sampling_temperature"] > 0
    for where in ("sim", "imagined"):
        judged = report["judged"][where]
        for who in ("base", "candidate"):
            assert judged[who]["low"] <= judged[who]["rate"] <= judged[who]["high"]
        assert 0.0 <= judged["p_worse"] <= 1.0
    assert report["figures"] and report["outcome_reason"]
    after = report["versions_after_rollout"]
    if report["promoted"]:  # rolled out while the robot ran: it swapped at an episode boundary
        candidate = report["robot"]["candidate"]["version"]
        assert after[0] == base["version"] and set(after[1:]) == {candidate}
    else:  # not promoted: nothing rolled out, the robot kept the base
        assert after == [] and "candidate" not in report["robot"]
        assert "not promoted" in (out / "report.md").read_text()

    store = EpisodeStore(out / "episodes")
    demos = store.episodes(policy_version="scripted")
    assert len(demos) == 2 and all(e.success == "true" for e in demos)  # SFT needs successful demonstrations
    deployed = store.episodes(policy_version=base["version"])
    assert len(deployed) >= 4 and all(e.status == "complete" for e in deployed)
    assert (out / "report.png").stat().st_size > 1000 and "| sim |" in (out / "report.md").read_text()


def test_unknown_task_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--task", "make-coffee-please", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "make-coffee-please" in result.output and "Traceback" not in result.output


def test_a_rerun_keeps_or_deletes_the_earlier_demo(tmp_path: Path) -> None:
    from flywheel.demo import MARKER, _clear_previous

    out = tmp_path / "demo"
    (out / "episodes").mkdir(parents=True)
    (out / MARKER).write_text("{}")
    _clear_previous(out, keep=True)
    assert not out.exists() and (tmp_path / "demo.previous" / MARKER).is_file()
    (out / "episodes").mkdir(parents=True)
    _clear_previous(out, keep=True)  # a second rerun replaces the older copy
    assert (tmp_path / "demo.previous" / "episodes").is_dir() and not (tmp_path / "demo.previous" / MARKER).exists()
    (out / "episodes").mkdir(parents=True)
    _clear_previous(out, keep=False)
    assert not out.exists()


def test_an_out_folder_that_is_not_a_demo_is_refused(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("keep me")
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "not a demo" in result.output and "Traceback" not in result.output
    assert (tmp_path / "thesis.tex").read_text() == "keep me"


def test_a_robot_that_dies_during_the_rollout_fails_the_demo(tmp_path: Path, monkeypatch: Any) -> None:
    """The report must not pass off a dead robot's run as the candidate's: the demo stops with the reason."""
    from flywheel import demo

    def dies(*_: Any, **__: Any) -> None:
        raise IndexError("pop from empty list")

    rolled: list[str] = []

    class Http:
        def rollout(self, version: str) -> None:
            rolled.append(version)

    monkeypatch.setattr(demo, "_robot_run", dies)
    config = demo.DemoConfig.quick(tmp_path / "demo")
    with pytest.raises(demo.DemoFailed, match="the robot stopped during the rollout: IndexError: pop from empty list"):
        demo._run_with_rollout(config, tmp_path / "store", "http://127.0.0.1:1", Http(), "vla-x")  # type: ignore[arg-type]
    assert rolled == ["vla-x"]
