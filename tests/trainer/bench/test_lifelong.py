"""`flywheel bench lifelong`: the flywheel over nights, with its gate, from an empty store at toy sizes."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.bench.lifelong import LifelongConfig, run_lifelong, summary
from trainer.bench.paper import PRESETS


@pytest.mark.slow
def test_each_round_deploys_what_its_judge_promoted(tmp_path: Path) -> None:
    cfg = LifelongConfig(bench=PRESETS["quick"], rounds=2)
    p = cfg.bench.budget
    lines = run_lifelong(cfg, tmp_path, echo=None)
    task = cfg.bench.tasks[0]
    rounds = {ln["row"]: ln for ln in lines if ln.get("figure") == "success_rate"}
    assert sorted(rounds) == ["round0", "round1", "round2"]
    for r in (1, 2):
        line = rounds[f"round{r}"]
        assert line["temperature"] == 0.0 and line["n"] == cfg.bench.eval_episodes and line["reason"]
        assert line["real_episodes"] == p * r
        deployed = tmp_path / task / f"round{r}" / "policy"
        assert deployed.is_dir() == line["promoted"]  # a round's candidate becomes the robot's only if promoted
        assert (tmp_path / task / f"round{r}" / "world_model" / "config.json").is_file()
    from data_store.episodes import EpisodeStore

    store = EpisodeStore(tmp_path / "store")
    assert [len(store.episodes(task=task, robot_id=f"round{r}")) for r in (1, 2)] == [p, p]
    text = summary(lines)
    assert len(text) == 3 and "vs round 0" in text[1]
