"""The control loop: observe → policy chunk (at chunk boundaries) → safety filter → send action, at a fixed rate.

In the style of openpi's ``Runtime``: one small loop drives a ``Robot`` (the environment), a
``PolicySlot`` (the agent) and ``Subscriber``s (the recorder, the live display). Per tick ``t``:

1. at a chunk boundary the slot applies a staged swap and the policy gives a chunk float32 ``[K, A]``
   for the current observation;
2. the chunk's next action goes through the ``SafetyFilter`` (on by default; the robot's preset);
3. the robot executes it, subscribers see ``(obs_t, action_t)`` (the action actually sent), the robot
   is observed again and asked whether the task is done.

Clock: a simulator runs on its own clock (one tick per ``send_action``, nothing sleeps); a physical arm,
or a simulator with ``realtime=True``, is paced on the wall clock at ``spec.fps`` (default 10 Hz) and
a tick that ends after its deadline counts as a missed deadline (the schedule then restarts from now,
it never bursts to catch up). A robot whose ``send_action`` keeps the rate itself (``needs_pacing``
False, e.g. ``TopicArm``) is not paced twice.

How an episode ends (``EpisodeResult.reason``; status ``complete`` unless said otherwise):
``success`` (the robot says so, with ``stop_on_success``), ``max steps``, ``policy finished`` (a replay
ran out), and ``aborted`` ones: ``e-stop: ...``, ``non-finite action ...``, ``policy error: ...``,
``operator interrupt``. Ctrl-C (``KeyboardInterrupt``) or ``stop_event`` ends the episode at once: the
arm holds, the recorded steps are kept, the episode is closed **aborted** with reason
``operator interrupt`` (its success is unknown: the operator stopped it for a reason; they can still
``store.label`` it), and a ``KeyboardInterrupt`` is raised again as ``EpisodeInterrupted`` carrying the
result, so callers stop too. An exception from the robot aborts the episode and propagates.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from data_store.schema import Observation
from robot_agent.policies import PolicyExhausted
from robot_agent.recorder import Recorder
from robot_agent.robots.base import Robot
from robot_agent.safety import SafetyConfig, SafetyFilter, make_filter
from robot_agent.slot import PolicySlot

DEFAULT_MAX_STEPS = 200


@dataclass(frozen=True)
class StepInfo:
    """What subscribers learn about one tick besides the observation and the action sent."""

    step: int  # t
    version: str  # policy version that produced the action
    events: tuple[str, ...]  # safety events of this tick ("clamped", "max_delta", "workspace", "watchdog")
    chunk_index: int  # position of the action in its chunk


@dataclass(frozen=True)
class EpisodeResult:
    success: bool | None  # None where the robot cannot tell
    steps: int  # actions sent and recorded
    reason: str
    episode_id: str | None = None
    status: Literal["complete", "aborted"] = "complete"
    versions: tuple[str, ...] = ()  # policy versions that ran, in order (more than one after a swap)
    missed_deadlines: int = 0  # wall-clock pacing only
    safety_events: dict[str, int] = field(default_factory=dict)
    step_latency_s: tuple[float, ...] = ()  # per tick: observe → chunk → filter → send → record


@dataclass
class _Tally:
    """What one episode has done so far."""

    steps: int = 0
    versions: list[str] = field(default_factory=list)
    succeeded: bool = False
    events: Counter[str] = field(default_factory=Counter)
    latency: list[float] = field(default_factory=list)


class Subscriber(Protocol):
    def on_episode_start(self, obs: Observation) -> None: ...

    def on_step(self, obs: Observation, action: np.ndarray, info: StepInfo) -> None: ...

    def on_episode_end(self, result: EpisodeResult) -> None: ...


class EpisodeInterrupted(KeyboardInterrupt):
    """Ctrl-C ended an episode; ``result`` is what was kept."""

    def __init__(self, result: EpisodeResult) -> None:
        super().__init__("operator interrupt")
        self.result = result


class _Clock:
    """The loop's time in seconds: ticks / fps on the sim clock, ``time.monotonic`` when paced."""

    def __init__(self, fps: float, wall: bool, stop_event: threading.Event) -> None:
        self.dt, self.wall, self.stop_event = 1.0 / fps, wall, stop_event
        self.start = time.monotonic()
        self.deadline = self.start + self.dt
        self.ticks = 0
        self.missed = 0

    def now(self) -> float:
        return time.monotonic() - self.start if self.wall else self.ticks * self.dt

    def tick(self) -> None:
        """End of a tick: on the wall clock, wait for the deadline (or count it missed)."""
        self.ticks += 1
        if not self.wall:
            return
        now = time.monotonic()
        if now > self.deadline:
            self.missed += 1
            self.deadline = now + self.dt
            return
        self.stop_event.wait(self.deadline - now)
        self.deadline += self.dt


class Runtime:
    """Runs episodes of ``robot`` with the policy in ``slot``; see the module docstring."""

    def __init__(
        self,
        robot: Robot,
        slot: PolicySlot,
        *,
        safety: SafetyConfig | SafetyFilter | None = None,
        subscribers: Sequence[Subscriber] = (),
        pace: bool | None = None,
        stop_on_success: bool = True,
        temperature: float = 0.0,
        stop_event: threading.Event | None = None,
    ) -> None:
        self.robot, self.slot = robot, slot
        self.safety = make_filter(safety, robot.spec, robot.safety_preset)
        self.subscribers = list(subscribers)
        self.pace = robot.needs_pacing if pace is None else pace
        self.stop_on_success, self.temperature = stop_on_success, temperature
        self.stop_event = stop_event or threading.Event()

    def run_episode(
        self, *, max_steps: int | None = None, seed: int | None = None, subscribers: Sequence[Subscriber] = ()
    ) -> EpisodeResult:
        subs = [*self.subscribers, *subscribers]
        robot, safety = self.robot, self.safety
        max_steps = int(max_steps or robot.max_steps or DEFAULT_MAX_STEPS)
        clock = _Clock(robot.spec.fps, self.pace, self.stop_event)
        episode_id = next((s.episode_id for s in subs if isinstance(s, Recorder)), None)
        tally = _Tally()

        def result(reason: str, status: Literal["complete", "aborted"] = "complete") -> EpisodeResult:
            try:
                told = robot.success() if tally.steps else None
            except Exception:  # the robot failed; what it said before still counts
                told = None
            success = None if told is None and not tally.succeeded else bool(tally.succeeded)
            return EpisodeResult(
                success=success,
                steps=tally.steps,
                reason=reason,
                episode_id=episode_id,
                status=status,
                versions=tuple(tally.versions),
                missed_deadlines=clock.missed,
                safety_events=dict(tally.events),
                step_latency_s=tuple(tally.latency),
            )

        def end(res: EpisodeResult) -> EpisodeResult:
            for s in subs:
                s.on_episode_end(res)
            return res

        if safety.estopped:
            return end(result(f"e-stop latched ({safety.estop_reason}): reset it first", "aborted"))
        safety.begin_episode()
        try:
            with self.slot.running():
                outcome = self._ticks(robot, safety, clock, subs, max_steps, seed, tally)
        except KeyboardInterrupt:
            _hold(robot)
            raise EpisodeInterrupted(end(result("operator interrupt", "aborted"))) from None
        except BaseException as e:
            end(result(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__, "aborted"))
            raise
        return end(result(*outcome))

    def _ticks(
        self,
        robot: Robot,
        safety: SafetyFilter,
        clock: _Clock,
        subs: list[Subscriber],
        max_steps: int,
        seed: int | None,
        tally: _Tally,
    ) -> tuple[str, Literal["complete", "aborted"]]:
        obs = robot.home(seed)
        for s in subs:
            s.on_episode_start(obs)
        clock.start, clock.deadline = time.monotonic(), time.monotonic() + clock.dt
        policy: Any = None
        version = ""
        chunk = np.zeros((0, robot.spec.action_dim), dtype=np.float32)
        k, issued_at = 0, 0.0
        while tally.steps < max_steps:
            started = time.perf_counter()
            if self.stop_event.is_set():
                _hold(robot)
                return "operator interrupt", "aborted"
            if k >= len(chunk):  # chunk boundary: the only place the policy may change
                new_policy, version = self.slot.at_chunk_boundary()
                if new_policy is not policy:
                    policy = new_policy
                    if hasattr(policy, "attach"):
                        policy.attach(robot)
                    policy.reset()
                    tally.versions.append(version)
                issued_at = clock.now()
                try:
                    chunk = np.asarray(policy.act(obs, temperature=self.temperature).actions, dtype=np.float32)
                except PolicyExhausted:
                    return "policy finished", "complete"
                except Exception as e:
                    _hold(robot)
                    return f"policy error: {type(e).__name__}: {e}", "aborted"
                k = 0
                if chunk.ndim != 2 or len(chunk) == 0:
                    _hold(robot)
                    return f"policy error: chunk of shape {list(chunk.shape)}, expected [K, A] with K > 0", "aborted"
            verdict = safety.filter(chunk[k], state=obs.state, now=clock.now(), issued_at=issued_at + k * clock.dt)
            k += 1
            if verdict.stop is not None:
                _hold(robot)
                return verdict.stop, "aborted"
            robot.send_action(verdict.action)
            info = StepInfo(step=tally.steps, version=version, events=verdict.events, chunk_index=k - 1)
            for s in subs:
                s.on_step(obs, verdict.action, info)
            tally.steps += 1
            tally.events.update(verdict.events)
            obs = robot.observe()
            if robot.success():
                tally.succeeded = True
                if self.stop_on_success:
                    tally.latency.append(time.perf_counter() - started)
                    return "success", "complete"
            tally.latency.append(time.perf_counter() - started)
            clock.tick()
        return "max steps", "complete"


def run_episode(
    robot: Robot,
    slot: PolicySlot,
    *,
    max_steps: int | None = None,
    seed: int | None = None,
    writer: Any = None,
    safety: SafetyConfig | SafetyFilter | None = None,
    subscribers: Sequence[Subscriber] = (),
    pace: bool | None = None,
    stop_on_success: bool = True,
    temperature: float = 0.0,
    stop_event: threading.Event | None = None,
) -> EpisodeResult:
    """One episode of ``robot`` with the policy in ``slot``; recorded through ``writer`` when given.

    ``safety``: a config, a filter (keep one across episodes so an e-stop stays latched), or None for
    the robot's preset (``SimRobot``: ``PRESETS["sim"]``). ``pace``: None follows the robot
    (``needs_pacing``). See the module docstring for how an episode ends.
    """
    subs: list[Subscriber] = list(subscribers)
    if writer is not None:
        subs.insert(0, Recorder(writer))
    runtime = Runtime(
        robot,
        slot,
        safety=safety,
        subscribers=subs,
        pace=pace,
        stop_on_success=stop_on_success,
        temperature=temperature,
        stop_event=stop_event,
    )
    return runtime.run_episode(max_steps=max_steps, seed=seed)


def _hold(robot: Robot) -> None:
    """Best effort: keep the arm where it is (an episode is ending; a failure here must not hide why)."""
    with contextlib.suppress(Exception):
        robot.hold()
