"""The canary rule as a pure function of counts (``rollouts.judge_canary``): promote on a clear gain, halt
on a clear loss, wait when undecided, halt at the end of the window with the figures; and its false-promotion
probability under repeated looks, computed exactly, at most alpha (where testing at alpha every look is not)."""

from __future__ import annotations

import pytest

from data_store.registry import Invalid
from data_store.registry.rollouts import CanaryPlan, Look, judge_canary, operating_characteristics
from data_store.stats import fisher_greater

PLAN = CanaryPlan()  # 5 looks up to 200 canary episodes, alpha 0.05


def _looks(*counts: tuple[int, int, int], fleet_per_canary: int = 2) -> list[Look]:
    """(canary successes, fleet successes, look) -> the Look with the plan's sizes."""
    sizes = PLAN.look_sizes()
    return [Look(kc, sizes[j - 1], kf, fleet_per_canary * sizes[j - 1]) for kc, kf, j in counts]


def test_the_plan_spends_alpha_once_over_its_looks() -> None:
    assert PLAN.look_sizes() == [40, 80, 120, 160, 200]
    gains = [PLAN.gain_level(j) for j in range(1, 6)]
    assert sum(gains) == pytest.approx(0.05) and gains == sorted(gains)  # most of it late, where the evidence is
    assert sum(PLAN.harm_level(j) for j in range(1, 6)) == pytest.approx(0.05)
    assert CanaryPlan(max_episodes=10, looks=3).look_sizes() == [4, 7, 10]
    for bad, match in (({"max_episodes": 0}, "max_episodes"), ({"max_episodes": 5, "looks": 6}, "looks"),
                       ({"min_success_rate": 1.5}, "min_success_rate")):  # fmt: skip
        with pytest.raises(Invalid, match=match):
            CanaryPlan(**bad)  # type: ignore[arg-type]


def test_a_clear_gain_promotes_with_its_figures() -> None:
    decision = judge_canary(_looks((34, 40, 1)), PLAN)  # 0.85 vs 0.50 at the first look
    assert (decision.outcome, decision.basis, decision.look) == ("promote", "gain", 1)
    p = fisher_greater(34, 40, 40, 80)
    assert decision.p_gain == pytest.approx(p) and p <= PLAN.gain_level(1)
    for part in ("34/40 = 0.85", "fleet 40/80 = 0.50", f"gain p = {p:.4g}", "alpha 0.05", "Fisher", "look 1 of 5"):
        assert part in decision.reason, decision.reason


def test_a_clear_loss_halts_at_once() -> None:
    decision = judge_canary(_looks((8, 40, 1)), PLAN)  # 0.20 vs 0.50
    assert (decision.outcome, decision.basis, decision.look) == ("halt", "harm", 1)
    assert "canary worse" in decision.reason and "8/40" in decision.reason and "harm p = " in decision.reason


def test_undecided_waits_for_the_next_look() -> None:
    assert judge_canary([], PLAN).outcome == "wait"
    decision = judge_canary(_looks((24, 40, 1), (50, 80, 2)), PLAN)  # 0.60 vs 0.50, then 0.625 vs 0.50
    assert decision.outcome == "wait" and "the next at 120 canary episodes" in decision.reason


def test_no_gain_by_the_last_look_halts_and_says_so() -> None:
    equal = _looks((20, 40, 1), (40, 80, 2), (60, 120, 3), (80, 160, 4), (104, 200, 5))
    decision = judge_canary(equal, PLAN)
    assert (decision.outcome, decision.basis, decision.look) == ("halt", "end", 5)
    p = fisher_greater(104, 200, 200, 400)
    assert "no evidence of a gain by the last look 5 of 5 (200 canary episodes)" in decision.reason
    assert "canary 104/200 = 0.52 vs fleet 200/400 = 0.50" in decision.reason
    assert f"gain p = {p:.4g} > {PLAN.gain_level(5):.4g}" in decision.reason
    # a fleet that reported nothing in the window gives nothing to beat
    empty = [Look(look.canary_successes, look.canary_episodes, 0, 0) for look in equal]
    assert "the fleet reported no episodes" in judge_canary(empty, PLAN).reason


def test_the_floor_holds_back_a_gain_below_it() -> None:
    floor = CanaryPlan(max_episodes=40, looks=1, min_success_rate=0.6)
    gain = [Look(22, 40, 20, 80)]  # 0.55 vs 0.25: significant, but below 0.6
    assert judge_canary(gain, CanaryPlan(max_episodes=40, looks=1)).outcome == "promote"
    decision = judge_canary(gain, floor)
    assert decision.outcome == "halt" and "below min_success_rate 0.60" in decision.reason


def test_the_first_look_that_crosses_decides() -> None:
    # look 2 shows a gain; look 3 would show a loss: judged one by one or all at once, look 2 decides
    looks = _looks((22, 40, 1), (62, 80, 2), (62, 240, 3))
    one_by_one = [judge_canary(looks[:j], PLAN) for j in range(1, 4)]
    assert [d.outcome for d in one_by_one] == ["wait", "promote", "promote"]
    assert judge_canary(looks, PLAN) == one_by_one[1]
    with pytest.raises(ValueError, match="looks at 40 canary episodes, got 39"):
        judge_canary([Look(20, 39, 40, 80)], PLAN)


class _AlphaAtEveryLook(CanaryPlan):
    """The naive rule: a one-sided test at alpha each time the canary is looked at."""

    def gain_level(self, look: int) -> float:
        return self.alpha


@pytest.mark.parametrize("rate", [0.3, 0.5, 0.8])
def test_equal_policies_are_promoted_at_most_alpha_of_the_time_however_often_judged(rate: float) -> None:
    plan = CanaryPlan(max_episodes=60, looks=6)
    equal = operating_characteristics(plan, rate, rate, fleet_per_canary=2)
    assert equal.promote <= plan.alpha
    assert equal.promote + equal.halt_harm + equal.halt_end == pytest.approx(1.0)  # every canary is decided
    naive = operating_characteristics(_AlphaAtEveryLook(max_episodes=60, looks=6), rate, rate, fleet_per_canary=2)
    assert naive.promote > plan.alpha  # what the spending is for
    better = operating_characteristics(plan, min(1.0, rate + 0.3), rate, fleet_per_canary=2)
    worse = operating_characteristics(plan, rate - 0.2, rate, fleet_per_canary=2)
    assert better.promote > 0.5 and worse.promote < equal.promote
