"""`flywheel bench paper`: the Wilson interval, the report from JSON lines, and an end-to-end `--quick` smoke
from an empty store (real demos, SFT, simulator episodes, world and reward model, every variant, evaluation)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer import paper_bench as pb


def test_wilson_interval() -> None:
    p, lo, hi = pb.wilson(50, 100)
    assert p == 0.5 and lo < 0.5 < hi and abs((0.5 - lo) - (hi - 0.5)) < 1e-9
    assert 0.39 < lo < 0.41  # the textbook value for 50/100 is [0.404, 0.596]
    p, lo, hi = pb.wilson(0, 20)
    assert p == 0.0 and lo == 0.0 and 0.1 < hi < 0.2  # never a degenerate [0, 0]
    _, lo_small, hi_small = pb.wilson(5, 10)
    assert hi_small - lo_small > pb.wilson(50, 100)[2] - pb.wilson(50, 100)[1]  # fewer episodes, wider


def test_report_from_lines(tmp_path: Path) -> None:
    cfg = pb.BenchConfig(tasks=("drawer-close", "window-open"), eval_episodes=10)
    lines = []
    for i, variant in enumerate(pb.VARIANTS):
        for where in (*cfg.tasks, "overall"):
            rate, lo, hi = pb.wilson(i + 2, 10)
            lines.append(
                {
                    "name": f"paper/{where}/{variant}",
                    "figure": "success_rate",
                    "value": rate,
                    "unit": "fraction",
                    "ci95": [lo, hi],
                    "n": 10,
                    "real_episodes": 128,
                }
            )
    lines.append({"name": "paper/drawer-close/wmpo/rl", "figure": "filtered_frac", "value": 0.25, "unit": "x"})
    report = pb.write_report(lines, cfg, tmp_path).read_text()
    assert (tmp_path / "success.png").stat().st_size > 1000
    for variant in pb.VARIANTS:
        assert pb.LABELS[variant] in report
    row = next(r for r in report.splitlines() if r.startswith("| WMPO + KIR |"))
    assert "50.0" in row  # wmpo_kir is the fourth variant: (3 + 2) / 10
    assert "filtered_frac" in report


@pytest.mark.slow
def test_quick_bench_end_to_end(tmp_path: Path) -> None:
    cfg = pb.PRESETS["quick"]
    lines = pb.run_bench(cfg, tmp_path, echo=None)
    rates = {ln["name"]: ln for ln in lines if ln["figure"] == "success_rate"}
    for variant in pb.VARIANTS:
        for where in (*cfg.tasks, "overall"):
            line = rates[f"paper/{where}/{variant}"]
            assert 0.0 <= line["ci95"][0] <= line["value"] <= line["ci95"][1] <= 1.0
            assert line["n"] == cfg.eval_episodes * (len(cfg.tasks) if where == "overall" else 1)
    task = cfg.tasks[0]
    assert rates[f"paper/{task}/wmpo_kir_coevo"]["real_episodes"] == cfg.budget + cfg.coevo_extra
    # the store holds the P base episodes and the co-evolution's extra ones, with their scene seeds
    from data_store.episodes import EpisodeStore

    store = EpisodeStore(tmp_path / "store")
    base = store.episodes(task=task, robot_id="base")
    assert len(base) == cfg.budget and all("seed" in i.meta for i in base)
    assert len(store.episodes(task=task, robot_id="evolved")) == cfg.coevo_extra
    saved = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert {ln["name"] for ln in saved} == {ln["name"] for ln in lines if not ln["name"].startswith("paper/overall/")}
    assert any(ln["name"] == f"paper/{task}/world_model" for ln in saved)  # the diagnostics ran
    assert "WMPO + KIR + co-evolution" in (tmp_path / "report.md").read_text()


def test_config_round_trips_through_json() -> None:
    for cfg in pb.PRESETS.values():
        assert pb.BenchConfig.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg


@pytest.mark.slow
def test_tasks_run_in_parallel_processes(tmp_path: Path) -> None:
    """Two tasks, two processes: both columns land in one results file, each process leaves its log."""
    from dataclasses import replace

    cfg = replace(pb.PRESETS["quick"], tasks=("drawer-close", "reach"), variants=("base",), eval_episodes=2)
    seen: list[str] = []
    lines = pb.run_bench(cfg, tmp_path, echo=seen.append, jobs=2)
    rates = {ln["name"]: ln for ln in lines if ln["figure"] == "success_rate"}
    assert {"paper/drawer-close/base", "paper/reach/base", "paper/overall/base"} <= set(rates)
    assert rates["paper/overall/base"]["n"] == 4
    for task in cfg.tasks:
        assert (tmp_path / task / "log.txt").stat().st_size > 0
        assert any(f"paper/{task}/base" in line for line in seen)  # the children's lines were echoed
