"""How often the canary rule promotes a version that is no better than the fleet's, measured on simulated
episodes: the false-promotion rate under repeated looks, with, for contrast, its power against a better
canary, how often a worse one is kept, and how many canary episodes it takes to decide.

    python benchmarks/canary_false_promotion.py [--sims 2000] [--base-rates 0.3,0.5,0.8]
        [--deltas 0,0.1,0.2,-0.1] [--max-episodes 200] [--looks 5] [--fleet-per-canary 2]

Each simulated canary draws its episodes' outcomes at ``base + delta`` and the fleet's at ``base``
(independent Bernoulli draws). The fleet reports ``fleet-per-canary`` episodes for each canary episode
(e.g. one canary robot and two others running at the same pace), so at a look with n canary episodes the
fleet has ``fleet-per-canary``·n in the same window. The canary is judged as the registry judges it: after
each look is reached, ``data_store.registry.rollouts.judge_canary`` on the counts of every look so far
(judging between looks repeats the same looks, so the answer cannot change there), until it promotes or
halts. ``delta`` 0 (two equal policies): a promotion is a false promotion.

Beside each simulated rate, the same figure computed exactly (``rollouts.operating_characteristics``:
dynamic programming over the counts at each look, the same ``judge_look``), unless ``--no-exact``.

Prints JSON lines ``{"name", "figure", "value", "unit", "machine", "config"}`` (simulated rates with their
95% Wilson interval as ``ci95`` and the exact value as ``exact``), then a Markdown table on stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

from data_store.measure import emit
from data_store.registry import Invalid
from data_store.registry.rollouts import (
    ALPHA,
    LOOKS,
    MAX_EPISODES,
    CanaryPlan,
    Look,
    OperatingCharacteristics,
    judge_canary,
    operating_characteristics,
)
from data_store.stats import wilson

NAME = "canary_false_promotion"


def simulate(
    base: float, delta: float, plan: CanaryPlan, fleet_per_canary: int, sims: int, rng: np.random.Generator
) -> dict[str, Any]:
    """Promoted / halted for harm / halted at the last look, and canary episodes to the decision."""
    sizes = plan.look_sizes()
    n = plan.max_episodes
    canary = np.cumsum(rng.random((sims, n)) < base + delta, axis=1)  # successes after i + 1 episodes
    fleet = np.cumsum(rng.random((sims, n * fleet_per_canary)) < base, axis=1)
    promoted = harmed = episodes = 0
    for i in range(sims):
        looks: list[Look] = []
        for size in sizes:
            nf = size * fleet_per_canary
            looks.append(Look(int(canary[i, size - 1]), size, int(fleet[i, nf - 1]), nf))
            decision = judge_canary(looks, plan)
            if decision.outcome != "wait":
                break
        assert decision.outcome != "wait", "the last look always decides"
        promoted += decision.outcome == "promote"
        harmed += decision.basis == "harm"
        episodes += sizes[decision.look - 1]
    return {"promoted": promoted, "halted_for_harm": harmed, "mean_episodes": episodes / sims, "sims": sims}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sims", type=int, default=2000, help="Simulated canaries per (base rate, delta).")
    p.add_argument("--base-rates", default="0.3,0.5,0.8", help="The fleet's success rates.")
    p.add_argument("--deltas", default="0,0.1,0.2,-0.1", help="Canary rate minus the fleet's.")
    p.add_argument("--max-episodes", type=int, default=MAX_EPISODES)
    p.add_argument("--looks", type=int, default=LOOKS)
    p.add_argument("--fleet-per-canary", type=int, default=2, help="Fleet episodes per canary episode.")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-exact", action="store_true", help="Skip the exact figures (a few seconds each).")
    args = p.parse_args()
    try:
        bases = [float(b) for b in args.base_rates.split(",")]
        deltas = [float(d) for d in args.deltas.split(",")]
        plan = CanaryPlan(max_episodes=args.max_episodes, looks=args.looks)
    except (ValueError, Invalid) as e:
        sys.exit(f"canary_false_promotion: {e}")
    if args.sims < 1 or args.fleet_per_canary < 1:
        sys.exit("canary_false_promotion: --sims and --fleet-per-canary must be at least 1")

    rng = np.random.default_rng(args.seed)
    table = []
    for base in bases:
        for delta in deltas:
            if not 0.0 <= base + delta <= 1.0:
                continue
            config = {"base_rate": base, "delta": delta, "sims": args.sims, "max_episodes": plan.max_episodes,
                      "looks": plan.looks, "alpha": ALPHA, "fleet_per_canary": args.fleet_per_canary,
                      "look_sizes": plan.look_sizes(), "seed": args.seed}  # fmt: skip
            t0 = time.perf_counter()
            got = simulate(base, delta, plan, args.fleet_per_canary, args.sims, rng)
            config["seconds"] = round(time.perf_counter() - t0, 1)
            exact = None
            if not args.no_exact:
                exact = operating_characteristics(plan, base + delta, base, fleet_per_canary=args.fleet_per_canary)
            promoted = wilson(got["promoted"], args.sims)
            if delta == 0:
                figure = "false_promotion_rate"  # equal policies, promoted
            elif delta > 0:
                figure = "power"  # a better canary, promoted
            else:
                figure = "worse_kept_rate"  # a worse canary, promoted: the fleet made worse
            extra = {"exact": exact.promote} if exact else {}
            emit(NAME, figure, promoted.rate, "fraction", config, ci95=[promoted.low, promoted.high], **extra)
            harm = wilson(got["halted_for_harm"], args.sims)
            extra = {"exact": exact.halt_harm} if exact else {}
            emit(NAME, "halted_as_worse_rate", harm.rate, "fraction", config, ci95=[harm.low, harm.high], **extra)
            extra = {"exact": exact.mean_episodes} if exact else {}
            emit(NAME, "mean_canary_episodes_to_decision", got["mean_episodes"], "episodes", config, **extra)
            table.append((base, delta, figure, promoted, exact, harm, got["mean_episodes"]))

    print(f"\n{args.sims} simulated canaries each; exact values in parentheses", file=sys.stderr)
    print("| fleet rate | canary − fleet | figure | promoted [95% CI] | halted as worse | canary episodes to decide |",
          file=sys.stderr)  # fmt: skip
    print("|---|---|---|---|---|---|", file=sys.stderr)
    for base, delta, figure, promoted, exact, harm, mean in table:
        cells = [
            f"{base:.1f}",
            f"{delta:+.1f}",
            figure,
            f"{promoted.rate:.3f} [{promoted.low:.3f}, {promoted.high:.3f}]" + _exact(exact, "promote"),
            f"{harm.rate:.3f}" + _exact(exact, "halt_harm"),
            f"{mean:.0f}" + _exact(exact, "mean_episodes", ".0f"),
        ]
        print("| " + " | ".join(cells) + " |", file=sys.stderr)


def _exact(exact: OperatingCharacteristics | None, field: str, fmt: str = ".3f") -> str:
    return "" if exact is None else f" ({getattr(exact, field):{fmt}})"


if __name__ == "__main__":
    main()
