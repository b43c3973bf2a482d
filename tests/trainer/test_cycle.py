"""The cycle's pure parts: who is held out to judge, how a comparison is made, and the promotion rule."""

from __future__ import annotations

import numpy as np
import pytest

from data_store.stats import wilson
from trainer.agreement import Agreement
from trainer.cycle import Comparison, Verdict, compare_sim, decide, imagination_trusted, judge_split
from trainer.recipe import recipe


def comparison(where: str, cand: int, parent: int, n: int = 50, p_worse: float = 0.5) -> Comparison:
    return Comparison(where, 0.0, wilson(cand, n), wilson(parent, n), p_worse, 1 - p_worse, n)


def test_judge_split_holds_out_a_share_never_all_and_is_stable() -> None:
    ids = [f"ep{i:03d}" for i in range(40)]
    r = recipe("default", judge_share=0.25)
    split = judge_split(ids, r)
    assert len(split.held_out) == 10 and len(split.train) == 30
    assert set(split.held_out) | set(split.train) == set(ids) and not set(split.held_out) & set(split.train)
    # the order does not matter, and one more episode moves at most one held-out episode back to training
    grown = judge_split([*reversed(ids), "ep999"], r)
    assert len(set(split.held_out) - set(grown.held_out)) <= 1
    assert judge_split(ids, r) == split
    assert judge_split(ids, recipe("default", seed=1)) != split  # another seed, another split
    tiny = judge_split(["a", "b"], r)
    assert len(tiny.held_out) == 1 and len(tiny.train) == 1
    with pytest.raises(ValueError, match="at least 2 episodes"):
        judge_split(["a"], r)


def test_compare_sim_is_a_paired_test_on_the_same_scenes() -> None:
    parent = np.array([True] * 20 + [False] * 30)
    better = parent.copy()
    better[20:35] = True  # 15 more scenes solved, none lost
    c = compare_sim(better, parent, 0.0)
    assert c.gain == pytest.approx(0.3) and c.p_better < 0.001 and c.p_worse == 1.0
    assert c.candidate.n == 50 and c.candidate.low < 0.7 < c.candidate.high
    same = compare_sim(parent, parent, 0.0)
    assert same.gain == 0 and same.p_better == 1.0 and same.p_worse == 1.0


def test_no_update_is_never_promoted() -> None:
    promote, reason = decide(False, [comparison("sim", 40, 20)], 0.05)
    assert not promote and "no update" in reason


def test_the_simulator_decides_where_there_is_one() -> None:
    imagined_down = comparison("imagined", 20, 22, p_worse=0.3)  # lower, not significantly
    assert decide(True, [imagined_down, comparison("sim", 30, 25)], 0.05)[0]
    promote, reason = decide(True, [comparison("imagined", 30, 20), comparison("sim", 24, 25)], 0.05)
    assert not promote and "loses" in reason and "sim success" in reason
    promote, reason = decide(True, [comparison("imagined", 5, 30, p_worse=0.001), comparison("sim", 30, 25)], 0.05)
    assert not promote and "worse" in reason  # imagination can still refuse, when it is sure


def test_without_a_simulator_imagination_decides() -> None:
    assert decide(True, [comparison("imagined", 25, 25)], 0.05)[0]  # does not lose: a tie is allowed
    assert not decide(True, [comparison("imagined", 24, 25, p_worse=0.4)], 0.05)[0]
    assert not decide(True, [], 0.05)[0]


def test_rl_stops_on_an_imagination_that_disagrees_with_the_arm_only_when_asked() -> None:
    figs = {"outcome_agreement": 0.6, "trajectories": 64.0, "imagined_success": 0.5, "replayed_success": 0.2,
            "advantage_sign_agreement": 0.5, "advantage_sign_agreement_separated": 0.4}  # fmt: skip
    low = Agreement(figs, {}, 0)
    assert imagination_trusted(low, recipe("default")) == (True, "")  # min_agreement 0: measured, reported only
    assert imagination_trusted(None, recipe("default", min_agreement=0.9)) == (True, "")  # nothing to replay
    ok, why = imagination_trusted(low, recipe("default", min_agreement=0.9))
    assert not ok and "60%" in why and "no RL update" in why
    assert imagination_trusted(Agreement({**figs, "outcome_agreement": 0.95}, {}, 0), recipe(min_agreement=0.9))[0]
    with pytest.raises(ValueError, match="min_agreement"):
        recipe("default", min_agreement=1.5)


def test_verdict_metrics_are_named_for_the_run_record() -> None:
    v = Verdict(True, True, "x", deploy=[comparison("imagined", 30, 20), comparison("sim", 30, 20)])
    m = v.metrics()
    for key in ("imagined_success", "parent_imagined_success", "imagined_gain", "sim_success", "parent_sim_success",
                "sim_gain", "sim_p_worse", "sim_ci95_low", "promoted", "updated", "deploy_temperature"):  # fmt: skip
        assert key in m, key
    assert m["sim_gain"] == pytest.approx(0.2) and m["promoted"] == 1.0


def test_the_same_episodes_recorded_again_are_split_the_same_way(tmp_path) -> None:
    """Episode ids carry the time they were recorded: two runs of a seeded demo record the same episodes under
    other ids. With the store, the split follows what the episodes recorded, so the same candidate comes out
    (the demo's first two runs at the median decoder held out different episodes: 92 -> 99 once, 92 -> 79 once)."""
    from data_store.episodes import EpisodeStore
    from tests.data_store.episode_helpers import small_spec, step

    spec = small_spec()
    r = recipe("default", judge_share=0.25)
    splits = []
    for run in ("first", "second"):
        store = EpisodeStore(tmp_path / run)
        ids = []
        for e in range(12):
            writer = store.create(spec, task="t", instruction="i", robot_id="sim-0")
            for t in range(3 + e % 4):
                obs, action = step(spec, t)
                writer.append(obs, action + e)  # each episode its own actions
            writer.finish(True)
            ids.append(writer.episode_id)
        split = judge_split(ids, r, store)
        order = {episode_id: i for i, episode_id in enumerate(ids)}  # recording order: the same in both runs
        splits.append(sorted(order[e] for e in split.held_out))
    assert splits[0] == splits[1] and len(splits[0]) == 3
