"""Rollouts (all at once, or a canary on N robots first) and rollbacks.

A rollout points each target robot's ``production`` alias at the new version; robots pick that up on
their next heartbeat and hot-swap. With a canary, only the first N robots move; the rest follow only when
the canary robots do significantly better under the new version than the other robots do, over the same
time, under the version they run (the fleet's current one). A rollback points robots back at the
previous (or a named) version in one call; robots swap on their next heartbeat (seconds: the previous
version is still loaded on the robot).

The canary test (``judge_canary``, a pure function of counts; ``benchmarks/canary_false_promotion.py``
measures it on simulated episodes). A plan fixes, before any episode is seen, ``looks`` equally spaced
looks at the data, the last one at ``max_episodes`` canary episodes (known outcome, since the rollout
began). Look j sees the first n_j canary episodes (by end time) and the fleet's episodes that ended in the
same window: from the rollout's start to the end of the n_j-th canary episode, so judging again (every
canary episode report does) repeats a look rather than adding one. At each look, two one-sided Fisher
exact tests:

- gain: canary above the fleet, at the level alpha·(t_j² − t_{j−1}²), t_j = n_j / max_episodes;
- harm: canary below the fleet, at the level alpha·(t_j − t_{j−1}).

The gain levels sum to alpha over the looks, so whatever the looks' correlation (Bonferroni) a canary
no better than the fleet is promoted with probability at most alpha (0.05) however often it is judged;
the t² shape keeps most of it for the late looks, where the evidence is. A significant gain promotes
(when ``min_success_rate`` is set, the canary's rate must also reach it); a significant harm halts; the
last look without a gain halts too: a candidate that does not beat what runs now is not promoted.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from data_store.registry import audit, fleet, policies
from data_store.registry.db import utcnow
from data_store.registry.errors import Invalid, NotFound
from data_store.registry.models import FLEET, Alias, EpisodeRecord, Rollout, robot_scope
from data_store.registry.policies import PRODUCTION
from data_store.stats import fisher_greater

ACTIVE = "canary"
ROLLING = "rolling_out"  # decided (all at once, or a canary promoted): the target robots are moving to it
LIVE = (ACTIVE, ROLLING, "complete")  # a rollout a refusal or a rollback can still end
ALPHA = 0.05  # one-sided, for the gain test and (separately) for the harm test
MAX_EPISODES = 200  # canary episodes by the last look
LOOKS = 5

# The same few counts come back at every report and in every simulated canary of the benchmark.
_fisher_greater = functools.lru_cache(maxsize=1 << 16)(fisher_greater)


@dataclass(frozen=True)
class CanaryPlan:
    """How a canary is judged, fixed when it starts: ``looks`` equally spaced looks up to ``max_episodes``
    canary episodes, one-sided level ``alpha`` for the gain and for the harm test, and an optional floor."""

    max_episodes: int = MAX_EPISODES
    looks: int = LOOKS
    alpha: float = ALPHA
    min_success_rate: float | None = None

    def __post_init__(self) -> None:
        if self.max_episodes < 1:
            raise Invalid(f"max_episodes: a canary needs at least 1 episode to judge, got {self.max_episodes}")
        if not 1 <= self.looks <= self.max_episodes:
            raise Invalid(f"looks: expected 1..max_episodes ({self.max_episodes}), got {self.looks}")
        if not 0.0 < self.alpha < 1.0:
            raise Invalid(f"alpha: expected a level in (0, 1), got {self.alpha}")
        if self.min_success_rate is not None and not 0.0 <= self.min_success_rate <= 1.0:
            raise Invalid(f"min_success_rate: expected 0..1, got {self.min_success_rate}")

    def look_sizes(self) -> list[int]:
        """Canary episodes at each look, e.g. ``[40, 80, 120, 160, 200]``."""
        return [math.ceil(j * self.max_episodes / self.looks) for j in range(1, self.looks + 1)]

    def gain_level(self, look: int) -> float:
        """The one-sided level of the gain test at ``look`` (1-based): alpha·(t_j² − t_{j−1}²)."""
        t, t0 = self._t(look), self._t(look - 1)
        return self.alpha * (t * t - t0 * t0)

    def harm_level(self, look: int) -> float:
        """The one-sided level of the harm test at ``look`` (1-based): alpha·(t_j − t_{j−1})."""
        return self.alpha * (self._t(look) - self._t(look - 1))

    def rule(self) -> str:
        floor = ""
        if self.min_success_rate is not None:
            floor = f"; promote only at a canary rate >= {self.min_success_rate:.2f}"
        return (
            f"rule: one-sided Fisher exact tests at {self.looks} look(s) up to {self.max_episodes} canary episodes, "
            f"alpha {self.alpha:g} per side spent as alpha*t^2 (gain) and alpha*t (harm){floor}"
        )

    def _t(self, look: int) -> float:
        return 0.0 if look <= 0 else self.look_sizes()[look - 1] / self.max_episodes


@dataclass(frozen=True)
class Look:
    """The counts at one look: the canary robots under the new version, the fleet under its current one,
    over the same window."""

    canary_successes: int
    canary_episodes: int
    fleet_successes: int
    fleet_episodes: int

    def figures(self) -> str:
        def rate(k: int, n: int) -> str:
            return f"{k}/{n} = {k / n:.2f}" if n else f"{k}/{n}"

        return (
            f"canary {rate(self.canary_successes, self.canary_episodes)} vs "
            f"fleet {rate(self.fleet_successes, self.fleet_episodes)}"
        )


Outcome = Literal["promote", "halt", "wait"]


@dataclass(frozen=True)
class CanaryDecision:
    outcome: Outcome
    reason: str
    basis: Literal["gain", "harm", "end", ""] = ""  # a significant gain or harm, or the last look without a gain
    look: int = 0  # the look (1-based) that decided; 0 while waiting
    p_gain: float = math.nan  # at that look
    p_harm: float = math.nan


def judge_canary(looks: Sequence[Look], plan: CanaryPlan) -> CanaryDecision:
    """Promote, halt or wait, given the counts at each look reached so far (``looks[j]`` at look j + 1,
    its canary episodes ``plan.look_sizes()[j]``). The first look that crosses a boundary decides, so
    judging the same looks again gives the same answer, and judging them all at once (the benchmark)
    gives what judging them one by one as episodes arrive (the registry) gives."""
    if len(looks) > plan.looks:
        raise ValueError(f"{len(looks)} looks for a plan of {plan.looks}")
    for j, look in enumerate(looks, start=1):
        decision = judge_look(j, look, plan)
        if decision.outcome != "wait":
            return decision
    sizes = plan.look_sizes()
    done = f"{len(looks)} of {plan.looks} looks undecided" if looks else "no look yet"
    return CanaryDecision("wait", f"waiting: {done}; the next at {sizes[len(looks)]} canary episodes")


def judge_look(j: int, look: Look, plan: CanaryPlan) -> CanaryDecision:
    """The decision at look ``j`` (1-based) alone, for a canary that every earlier look left waiting."""
    size = plan.look_sizes()[j - 1]
    kc, nc, kf, nf = look.canary_successes, look.canary_episodes, look.fleet_successes, look.fleet_episodes
    if nc != size:  # the levels are spent by the look sizes, fixed before any episode was seen
        raise ValueError(f"look {j}: the plan looks at {size} canary episodes, got {nc}")
    p_gain, p_harm = _fisher_greater(kc, nc, kf, nf), _fisher_greater(kf, nf, kc, nc)
    a_gain, a_harm = plan.gain_level(j), plan.harm_level(j)
    at = f"look {j} of {plan.looks} ({nc} canary episodes): {look.figures()}"
    rule = plan.rule()
    floor_ok = plan.min_success_rate is None or (nc > 0 and kc / nc >= plan.min_success_rate)
    if p_gain <= a_gain and floor_ok:
        why = f"canary better at {at}; gain p = {p_gain:.4g} <= {a_gain:.4g} ({rule})"
        return CanaryDecision("promote", why, "gain", j, p_gain, p_harm)
    if p_harm <= a_harm:
        why = f"canary worse at {at}; harm p = {p_harm:.4g} <= {a_harm:.4g} ({rule})"
        return CanaryDecision("halt", why, "harm", j, p_gain, p_harm)
    if j < plan.looks:
        return CanaryDecision("wait", f"undecided at {at}", "", 0, p_gain, p_harm)
    if p_gain <= a_gain:  # a gain, but below the operator's floor
        why = (
            f"canary below min_success_rate {plan.min_success_rate:.2f} at the last {at}; "
            f"gain p = {p_gain:.4g} <= {a_gain:.4g} ({rule})"
        )
    elif nf == 0:
        why = f"no evidence of a gain by the last {at}: the fleet reported no episodes to compare ({rule})"
    else:
        why = f"no evidence of a gain by the last {at}; gain p = {p_gain:.4g} > {a_gain:.4g} ({rule})"
    return CanaryDecision("halt", why, "end", j, p_gain, p_harm)


@dataclass(frozen=True)
class OperatingCharacteristics:
    """What the rule does on average, for one pair of true success rates (probabilities of each outcome)."""

    promote: float
    halt_harm: float  # halted on a significant harm
    halt_end: float  # halted at the last look without a gain
    mean_episodes: float  # expected canary episodes to the decision


def operating_characteristics(
    plan: CanaryPlan, canary_rate: float, fleet_rate: float, *, fleet_per_canary: int = 1, tol: float = 1e-12
) -> OperatingCharacteristics:
    """The exact probability that ``judge_canary`` promotes or halts when every canary episode succeeds at
    ``canary_rate`` and every fleet episode at ``fleet_rate``, independently, with ``fleet_per_canary``
    fleet episodes per canary episode at each look. Dynamic programming over the counts (canary
    successes, fleet successes) still undecided after each look; states below ``tol`` are dropped.
    O(max_episodes² · fleet_per_canary) memory: for checking the rule (the tests, the benchmark)."""
    sizes, n_max = plan.look_sizes(), plan.max_episodes
    m_max = fleet_per_canary * n_max
    mass = np.zeros((n_max + 1, m_max + 1))  # P(undecided, canary successes, fleet successes)
    mass[0, 0] = 1.0
    promote = harm = end = episodes = 0.0
    before = 0
    for j, n in enumerate(sizes, start=1):
        dc = n - before
        canary_step, fleet_step = _binomial_pmf(dc, canary_rate), _binomial_pmf(fleet_per_canary * dc, fleet_rate)
        grown = np.zeros_like(mass)
        for a, pa in enumerate(canary_step):
            grown[a:] += pa * mass[: n_max + 1 - a]
        mass = np.zeros_like(mass)
        for b, pb in enumerate(fleet_step):
            mass[:, b:] += pb * grown[:, : m_max + 1 - b]
        mass[mass < tol] = 0.0
        for kc, kf in zip(*np.nonzero(mass), strict=True):
            decision = judge_look(j, Look(int(kc), n, int(kf), fleet_per_canary * n), plan)
            if decision.outcome == "wait":
                continue
            pr = float(mass[kc, kf])
            mass[kc, kf] = 0.0
            episodes += pr * n
            if decision.outcome == "promote":
                promote += pr
            elif decision.basis == "harm":
                harm += pr
            else:
                end += pr
        before = n
    return OperatingCharacteristics(promote, harm, end, episodes)


def _binomial_pmf(n: int, p: float) -> np.ndarray:
    """P(k successes of n) for k = 0..n, in log space (no overflow for large n)."""
    k = np.arange(n + 1)
    if p <= 0.0 or p >= 1.0:
        return (k == (n if p >= 1.0 else 0)).astype(np.float64)
    log_comb = np.array([math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in k])
    return np.exp(log_comb + k * math.log(p) + (n - k) * math.log1p(-p))


def plan_of(row: Rollout) -> CanaryPlan:
    return CanaryPlan(
        max_episodes=row.max_episodes or MAX_EPISODES,
        looks=row.looks or LOOKS,
        min_success_rate=row.min_success_rate,
    )


def start_rollout(
    s: Session,
    version: str,
    robots: list[str] | None,
    *,
    by: str,
    canary: int = 0,
    max_episodes: int = MAX_EPISODES,
    looks: int = LOOKS,
    min_success_rate: float | None = None,
) -> Rollout:
    """Roll ``version`` out to ``robots`` (None: every registered robot, and the fleet alias, so robots
    that join later run it too). ``canary`` > 0 moves only that many robots first; the others keep the
    version they run, which the canary is compared with (see the module's docstring). ``version`` may be a fleet
    alias (``candidate``): the rollout names the version it points at now."""
    version = policies.resolve(s, version).version
    fleet_wide = robots is None
    targets = [r.robot_id for r in fleet.list_robots(s)] if robots is None else list(dict.fromkeys(robots))
    for robot_id in targets:
        fleet.get_robot(s, robot_id)
    if canary > 0 and not targets:
        raise Invalid(
            "canary: no robot has connected yet, so none can be a canary; start the robots first "
            "(`flywheel robot run --server ...`), or roll out without a canary (robots that join later run it)"
        )
    if canary < 0 or canary > len(targets):
        raise Invalid(f"canary: expected 0..{len(targets)} robots, got {canary}")
    previous = {r: policies.desired_version(s, r) for r in targets}
    if canary:
        plan = CanaryPlan(max_episodes=max_episodes, looks=looks, min_success_rate=min_success_rate)
        others = targets[canary:]
        if not others:
            raise Invalid(
                f"canary: {canary} of {len(targets)} robots leaves none on the current version to compare "
                f"the canary with; use fewer canary robots (or roll out with canary 0)"
            )
        if not any(previous[r] not in (None, version) for r in others):
            raise Invalid(
                f"canary: the other robots ({', '.join(others)}) run no other version to compare the canary "
                f"with; roll out with canary 0"
            )
    first = targets[:canary] if canary else targets
    row = Rollout(
        version=version,
        robots=targets,
        canary=targets[:canary],
        previous=previous,
        status=ACTIVE if canary else ROLLING,
        min_success_rate=min_success_rate if canary else None,
        min_episodes=plan.look_sizes()[0] if canary else 0,  # no decision before the first look
        max_episodes=max_episodes if canary else None,
        looks=looks if canary else None,
        created_by=by,
        reason=None if canary else "all at once",
    )
    s.add(row)
    s.flush()
    why = f"rollout {row.id}"
    for earlier in s.scalars(sa.select(Rollout).where(Rollout.status == ROLLING, Rollout.id != row.id)):
        if earlier.version != version and set(earlier.robots) & set(first):  # its robots are sent elsewhere now
            earlier.status, earlier.decided_at = "superseded", utcnow()
            earlier.reason = f"superseded by rollout {row.id} ({version}) before every robot ran it"
    for robot_id in first:
        policies.set_alias(s, robot_scope(robot_id), PRODUCTION, version, by=by, why=why)
    if fleet_wide and not canary:
        policies.set_alias(s, FLEET, PRODUCTION, version, by=by, why=why)
    audit.record(s, "rollout", actor=by, version=version, rollout=row.id, robots=targets, canary=row.canary)
    _complete_if_done(s, row)
    return row


def running_versions(s: Session) -> dict[str, str | None]:
    """What each registered robot last said it runs (read once for many rollouts)."""
    return {r.robot_id: r.running_version for r in fleet.list_robots(s)}


def robot_states(
    s: Session, row: Rollout, running: Mapping[str, str | None] | None = None
) -> dict[str, dict[str, str]]:
    """Each target robot's part in the rollout: ``running`` (it runs the version), ``pending`` (it is meant to, and
    does not yet), ``waiting`` (a robot the running canary is compared with), ``kept`` (such a robot, after the
    canary was halted or refused), ``refused`` (with its reason), ``rolled_back``."""
    running = running_versions(s) if running is None else running
    outcomes = row.outcomes or {}
    states: dict[str, dict[str, str]] = {}
    for robot_id in row.robots:
        if robot_id in outcomes:
            states[robot_id] = dict(outcomes[robot_id])
        elif row.status == "rolled_back" or (row.status in ("halted", "refused") and robot_id in row.canary):
            states[robot_id] = {"state": "rolled_back"}
        elif running.get(robot_id) == row.version:
            states[robot_id] = {"state": "running"}
        elif row.canary and robot_id not in row.canary and row.status == ACTIVE:
            states[robot_id] = {"state": "waiting"}
        elif row.canary and robot_id not in row.canary and row.status in ("halted", "refused"):
            states[robot_id] = {"state": "kept"}
        else:
            states[robot_id] = {"state": "pending"}
    return states


def note_running(s: Session, robot_id: str) -> list[int]:
    """``robot_id`` reported what it runs (a heartbeat, a swap): a rollout whose every target robot now runs its
    version is ``complete``. Returns the ids of the rollouts it completed."""
    done = []
    rows = [r for r in s.scalars(sa.select(Rollout).where(Rollout.status == ROLLING)) if robot_id in r.robots]
    running = running_versions(s) if rows else {}
    for row in rows:
        if _complete_if_done(s, row, running):
            done.append(row.id)
    return done


def _complete_if_done(s: Session, row: Rollout, running: Mapping[str, str | None] | None = None) -> bool:
    if row.status != ROLLING:
        return False
    states = robot_states(s, row, running)
    if any(st["state"] != "running" for st in states.values()):
        return False
    row.status = "complete"
    audit.record(s, "rollout_complete", actor="fleet", version=row.version, rollout=row.id, robots=row.robots)
    s.flush()
    return True


def get_rollout(s: Session, rollout_id: int) -> Rollout:
    row = s.get(Rollout, rollout_id)
    if row is None:
        raise NotFound(f"no rollout {rollout_id}")
    return row


def list_rollouts(s: Session, *, limit: int = 100, offset: int = 0) -> list[Rollout]:
    return list(s.scalars(sa.select(Rollout).order_by(Rollout.id.desc()).limit(limit).offset(offset)))


def canary_rate(s: Session, row: Rollout) -> fleet.Rate:
    """The canary robots under the new version since the rollout began."""
    return fleet.success_rate(s, row.version, robots=row.canary, since=row.created_at)


def fleet_rate(s: Session, row: Rollout, *, until: datetime | None = None) -> fleet.Rate:
    """The rollout's other robots under the version each ran when it began (the fleet's current version),
    over episodes that ended since then (and by ``until``)."""
    by_version: dict[str, list[str]] = {}
    for robot_id in row.robots[len(row.canary) :]:
        was = row.previous.get(robot_id)
        if was and was != row.version:
            by_version.setdefault(was, []).append(robot_id)
    n = k = 0
    for version, robots in by_version.items():
        rate = fleet.success_rate(s, version, robots=robots, since=row.created_at, until=until)
        n, k = n + rate.episodes, k + rate.successes
    return fleet.Rate(episodes=n, successes=k)


def canary_looks(s: Session, row: Rollout, plan: CanaryPlan) -> list[Look]:
    """The counts at each look the canary has reached: the first n_j canary episodes (known outcome, by
    end time) and the fleet's episodes that ended between the rollout's start and the n_j-th's end."""
    q = (
        sa.select(EpisodeRecord.ended_at, EpisodeRecord.success)
        .where(
            EpisodeRecord.policy_version == row.version,
            EpisodeRecord.robot_id.in_(row.canary),
            EpisodeRecord.success != "unknown",
            EpisodeRecord.ended_at >= row.created_at,
        )
        .order_by(EpisodeRecord.ended_at, EpisodeRecord.episode_id)
        .limit(plan.max_episodes)
    )
    episodes = s.execute(q).all()
    looks = []
    for n in plan.look_sizes():
        if len(episodes) < n:
            break
        k = sum(success == "true" for _, success in episodes[:n])
        fleet_now = fleet_rate(s, row, until=episodes[n - 1][0])
        looks.append(Look(k, n, fleet_now.successes, fleet_now.episodes))
    return looks


def evaluate_rollout(s: Session, row: Rollout, *, by: str = "canary-check") -> Rollout:
    """Judge a canary rollout (``judge_canary`` on the looks it has reached): promote it (the rest of
    the robots move), halt it (the canary robots go back) or leave it running."""
    if row.status != ACTIVE:
        return row
    plan = plan_of(row)
    decision = judge_canary(canary_looks(s, row, plan), plan)
    if decision.outcome == "wait":
        return row
    row.decided_at = utcnow()
    row.reason = decision.reason
    why = f"rollout {row.id}"
    if decision.outcome == "promote":
        row.status = ROLLING
        for robot_id in row.robots[len(row.canary) :]:
            policies.set_alias(s, robot_scope(robot_id), PRODUCTION, row.version, by=by, why=why)
        audit.record(s, "promote", actor=by, version=row.version, rollout=row.id, reason=row.reason)
        _complete_if_done(s, row)
    else:
        row.status = "halted"
        for robot_id in row.canary:
            _restore(s, robot_id, row.previous.get(robot_id), by=by, why=why)
        audit.record(s, "halt", actor=by, version=row.version, rollout=row.id, reason=row.reason)
    s.flush()
    return row


def evaluate_for_robot(s: Session, robot_id: str) -> list[Rollout]:
    """Evaluate the active canary rollouts that ``robot_id`` is a canary of (called on each episode)."""
    active = s.scalars(sa.select(Rollout).where(Rollout.status == ACTIVE)).all()
    return [evaluate_rollout(s, r) for r in active if robot_id in r.canary]


def record_refusal(s: Session, robot_id: str, version: str, reason: str) -> list[int]:
    """``robot_id`` refused ``version`` (a bad config, a NaN probe, another action space): each rollout that sent
    it there ends ``refused`` with the robot and the reason (a canary's refusal fails the canary: its robots go
    back), and the robot is pointed back at what it ran before, so the registry never shows as desired a version
    the robot will not run. Returns the rollouts' ids."""
    hit: list[int] = []
    live = sa.select(Rollout).where(Rollout.status.in_(LIVE), Rollout.version == version)
    for row in s.scalars(live):
        if robot_id not in row.robots:
            continue
        was_canary = row.status == ACTIVE
        row.status, row.decided_at = "refused", utcnow()
        row.reason = f"robot {robot_id} refused {version}: {reason or 'no reason given'}"
        row.outcomes = {**(row.outcomes or {}), robot_id: {"state": "refused", "reason": reason or "no reason given"}}
        why = f"rollout {row.id}: refused by {robot_id}"
        for r in row.canary if was_canary else [robot_id]:
            _restore(s, r, _before(s, row, r), by=robot_id, why=why)
        audit.record(s, "rollout_refused", actor=robot_id, version=version, rollout=row.id, reason=reason)
        hit.append(row.id)
    s.flush()
    return hit


def _before(s: Session, row: Rollout, robot_id: str) -> str | None:
    """What ``robot_id`` should run when ``row``'s version is taken back: its own previous version, else the
    fleet's previous one (a robot that followed the fleet alias, which now names ``row.version``)."""
    previous = row.previous.get(robot_id)
    if previous is not None and previous != row.version:
        return str(previous)
    fleet_alias = policies.get_alias(s, FLEET, PRODUCTION)
    if fleet_alias is not None and fleet_alias.version == row.version:
        return fleet_alias.previous
    return None


def rollback(s: Session, robots: list[str] | None = None, *, to: str | None = None, by: str) -> dict[str, Any]:
    """Point robots back at their previous version (or at ``to``). ``robots`` None: every robot that
    has its own ``production`` alias, and the fleet alias. Returns ``{scope: version}`` and what was
    skipped (a scope with no previous version) with the reason."""
    if to is not None:
        to = policies.resolve(s, to).version
    if robots is None:
        scopes = list(s.scalars(sa.select(Alias.scope).where(Alias.name == PRODUCTION)))
    else:
        scopes = [robot_scope(fleet.get_robot(s, robot_id).robot_id) for robot_id in robots]
    moved: dict[str, str] = {}
    was: dict[str, str] = {}  # what each moved scope ran before
    skipped: dict[str, str] = {}
    for scope in scopes:
        # A robot without its own alias follows the fleet's: roll back from that, and pin the robot.
        current = policies.get_alias(s, scope, PRODUCTION) or policies.get_alias(s, FLEET, PRODUCTION)
        target = to or (current.previous if current else None)
        if current is None or target is None:
            ran = f" (it only ever had {current.version})" if current else ""
            skipped[scope] = f"{scope} has no previous production version{ran}"
            continue
        was[scope] = current.version
        policies.set_alias(s, scope, PRODUCTION, target, by=by, why="rollback")
        moved[scope] = target
    if not moved:
        raise Invalid("nothing to roll back: " + ("; ".join(skipped.values()) or "no production aliases"))
    undone = []  # the rollouts whose version was running where it was rolled back from
    for row in s.scalars(sa.select(Rollout).where(Rollout.status.in_(LIVE))):
        scopes_of_row = {robot_scope(r) for r in row.robots} | {FLEET}
        if any(was.get(sc) == row.version and moved[sc] != row.version for sc in scopes_of_row):
            row.status, row.decided_at, row.reason = "rolled_back", utcnow(), f"rolled back by {by}"
            undone.append(row.id)
    audit.record(s, "rollback", actor=by, version=to, moved=moved, skipped=skipped, rollouts=undone)
    return {"moved": moved, "skipped": skipped, "rollouts": undone}


def _restore(s: Session, robot_id: str, version: str | None, *, by: str, why: str) -> None:
    if version is None:
        policies.drop_alias(s, robot_scope(robot_id), PRODUCTION, by=by, why=why)
    else:
        policies.set_alias(s, robot_scope(robot_id), PRODUCTION, version, by=by, why=why)
