"""Success statistics on recorded outcomes: one copy for every package that reports a success rate.

Every success figure the flywheel reports (the cycle's evaluation, the paper bench, the demo, a canary, the
dashboard) is a rate over binary outcomes; these are the intervals and tests it uses.

    wilson(7, 10)                         # Rate(rate=0.7, low=0.397, high=0.892, successes=7, n=10)
    mcnemar(candidate, parent)            # paired exact test on shared scenes (bool [n] each)
    sign_flip(per_scene_differences)      # paired permutation test of mean differences (float [n])
    hierarchical_ci(outcomes)             # 95% interval of a mean over seeds × scenes (float [seeds, scenes])
    fisher_greater(k1, n1, k2, n2)        # one-sided exact test: is rate 1 above rate 2? (two unpaired samples)

Only the standard library and numpy: ``data_store`` sits under every other package.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Z95 = 1.959964


@dataclass(frozen=True)
class Rate:
    """A success rate and its Wilson 95% interval."""

    rate: float
    low: float
    high: float
    successes: int
    n: int

    def percent(self) -> str:
        """``"63.0 [53, 72]"``."""
        if self.n == 0:
            return "–"
        return f"{100 * self.rate:.1f} [{100 * self.low:.0f}, {100 * self.high:.0f}]"

    def to_json(self) -> dict[str, float | int | list[float]]:
        return {"rate": self.rate, "ci95": [self.low, self.high], "successes": self.successes, "n": self.n}


def wilson(successes: int, n: int, z: float = Z95) -> Rate:
    """The Wilson score interval: sound at 0/n and n/n, where the normal one is not. n = 0 gives NaN."""
    if n == 0:
        return Rate(math.nan, math.nan, math.nan, 0, 0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Rate(p, max(0.0, centre - half), min(1.0, centre + half), int(successes), int(n))


def _binom_cdf(k: int, n: int, p: float = 0.5) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    return float(sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(0, k + 1)))


@dataclass(frozen=True)
class PairedTest:
    """Two policies on the same scenes: how often each won where they disagreed, and exact p-values."""

    n: int  # scenes
    a_only: int  # scenes where a succeeded and b failed
    b_only: int  # scenes where b succeeded and a failed
    p_two_sided: float
    p_a_greater: float  # one-sided: a's success rate is above b's
    p_a_less: float  # one-sided: a's success rate is below b's

    @property
    def difference(self) -> float:
        """rate(a) − rate(b) on the shared scenes."""
        return (self.a_only - self.b_only) / self.n if self.n else math.nan

    def to_json(self) -> dict[str, float | int]:
        return {
            "n": self.n,
            "a_only": self.a_only,
            "b_only": self.b_only,
            "difference": self.difference,
            "p_two_sided": self.p_two_sided,
            "p_a_greater": self.p_a_greater,
            "p_a_less": self.p_a_less,
        }


def mcnemar(a: Sequence[bool] | np.ndarray, b: Sequence[bool] | np.ndarray) -> PairedTest:
    """Exact McNemar test on paired binary outcomes (bool [n] each, scene i of ``a`` is scene i of ``b``).

    Under "no difference" each discordant scene is a fair coin, so the counts of a-only wins among the
    discordant scenes are Binomial(d, 1/2)."""
    x, y = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if x.shape != y.shape:
        raise ValueError(f"paired outcomes must have one shape, got {x.shape} and {y.shape}")
    a_only, b_only = int((x & ~y).sum()), int((~x & y).sum())
    d = a_only + b_only
    if d == 0:
        return PairedTest(int(x.size), 0, 0, 1.0, 1.0, 1.0)
    p_greater = 1.0 - _binom_cdf(a_only - 1, d) if a_only > 0 else 1.0  # P(X >= a_only)
    p_less = _binom_cdf(a_only, d)  # P(X <= a_only)
    return PairedTest(int(x.size), a_only, b_only, min(1.0, 2 * min(p_greater, p_less)), p_greater, p_less)


def sign_flip(
    differences: Sequence[float] | np.ndarray, draws: int = 20_000, seed: int = 0, alternative: str = "two-sided"
) -> float:
    """p-value of a paired permutation (sign-flip) test that the mean difference is 0.

    ``differences[i]`` is method − reference on scene i (e.g. a method's success averaged over its training
    seeds, minus the reference's on the same scene). ``alternative``: "two-sided", "greater" (the method is
    better) or "less" (the method is worse). Exact over all sign patterns when at most 16 scenes differ, else
    ``draws`` random patterns (with the observed one counted, so p is never 0)."""
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative: expected two-sided, greater or less, got {alternative!r}")
    d = np.asarray(differences, dtype=np.float64)
    d = d[d != 0]
    if d.size == 0:
        return 1.0
    if d.size <= 16:
        signs = ((np.arange(2**d.size)[:, None] >> np.arange(d.size)) & 1) * 2.0 - 1
        exact = True
    else:
        signs = np.random.default_rng(seed).choice(np.array([-1.0, 1.0]), size=(draws, d.size))
        exact = False
    sums, observed = signs @ d, d.sum()
    if alternative == "two-sided":
        hits = np.abs(sums) >= abs(observed) - 1e-12
    elif alternative == "greater":
        hits = sums >= observed - 1e-12
    else:
        hits = sums <= observed + 1e-12
    if exact:
        return float(hits.mean())
    return (int(hits.sum()) + 1) / (draws + 1)


def hierarchical_ci(
    outcomes: np.ndarray, draws: int = 4000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """Mean and a bootstrap interval of a success rate measured over training seeds × scenes.

    ``outcomes``: float [seeds, scenes] (0/1), the same scenes for every seed. Each draw resamples the seeds,
    then the scenes (the same scene indices for every seed), so the interval carries both the training
    randomness and the scene sampling. With one seed it is the scene bootstrap alone."""
    x = np.asarray(outcomes, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    s, n = x.shape
    if s == 0 or n == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, s, size=(draws, s))
    scenes = rng.integers(0, n, size=(draws, n))
    means = np.array([x[seeds[i]][:, scenes[i]].mean() for i in range(draws)])
    tail = (1 - level) / 2
    return float(x.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def fisher_greater(k1: int, n1: int, k2: int, n2: int) -> float:
    """One-sided Fisher exact p-value that the first rate (k1 of n1) is above the second (k2 of n2).

    P(X >= k1) for X hypergeometric: k1 + k2 successes shared among n1 + n2 trials at random."""
    total, wins = n1 + n2, k1 + k2
    if n1 == 0 or n2 == 0:
        return 1.0
    denom = math.comb(total, n1)
    top = min(wins, n1)
    return float(sum(math.comb(wins, i) * math.comb(total - wins, n1 - i) for i in range(k1, top + 1)) / denom)
