"""The control loop on the simulated arm, recording into a real episode store."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from data_store.episodes import EpisodeStore
from data_store.schema import ActionChunk, Observation
from robot_agent.loop import EpisodeInterrupted, run_episode
from robot_agent.policies import RandomPolicy, ScriptedPolicy, load_policy
from robot_agent.robots.sim import SimRobot
from robot_agent.safety import SafetyConfig, SafetyFilter
from robot_agent.slot import PolicySlot


class Scripted:
    """A policy that answers with given chunks and can misbehave on its n-th call."""

    action_dim = 4

    def __init__(self, value: list[float], *, chunk_size: int = 1, on_call: dict[int, object] | None = None) -> None:
        self.value, self.chunk_size, self.on_call, self.calls = value, chunk_size, on_call or {}, 0

    def reset(self) -> None:
        self.calls = 0

    def act(self, obs: Observation, temperature: float = 0.0) -> ActionChunk:
        what = self.on_call.get(self.calls)
        self.calls += 1
        if isinstance(what, BaseException):
            raise what
        if callable(what):
            what()
        return ActionChunk(np.tile(np.array(self.value, np.float32), (self.chunk_size, 1)))


def _record(store: EpisodeStore, robot: SimRobot, slot: PolicySlot, **kwargs: object):
    writer = store.create(robot.spec, task="drawer-close", instruction="close the drawer", policy_version=slot.version)
    return writer, run_episode(robot, slot, writer=writer, **kwargs)  # type: ignore[arg-type]


def test_sim_clock_at_10_hz_and_what_was_sent_is_recorded(sim_robot: SimRobot, store_dir: Path) -> None:
    store = EpisodeStore(store_dir)
    slot = PolicySlot(Scripted([3.0, -0.2, 0.1, 0.5]), "const")
    writer, result = _record(store, sim_robot, slot, max_steps=12, seed=5)
    assert (result.steps, result.reason, result.status) == (12, "max steps", "complete")
    assert result.episode_id == writer.episode_id and result.missed_deadlines == 0
    reader = store.open(writer.episode_id)
    np.testing.assert_allclose(reader.timestamps(), np.arange(12) / 10.0)  # step t at t / 10 s
    actions = reader.actions()
    np.testing.assert_allclose(actions[0], [1.0, -0.2, 0.1, 0.5])  # clamped to [-1, 1] before sending
    assert result.safety_events["clamped"] == 12
    assert reader.info.status == "complete" and reader.info.success == "false"
    assert reader.images("corner4").shape == (12, 64, 64, 3)
    assert [e.episode_id for e in store.episodes(status="complete")] == [writer.episode_id]


def test_the_scripted_expert_succeeds_through_the_safety_filter(sim_robot: SimRobot, store_dir: Path) -> None:
    store = EpisodeStore(store_dir)
    slot = PolicySlot(ScriptedPolicy(noise=0.05, robot=sim_robot), "scripted")
    writer, result = _record(store, sim_robot, slot, seed=2)
    assert result.success is True and result.reason == "success"
    info = store.info(writer.episode_id)
    assert info.success == "true" and info.length == result.steps < sim_robot.max_steps


def test_ctrl_c_at_step_n_keeps_n_frames_and_aborts(sim_robot: SimRobot, store_dir: Path) -> None:
    store = EpisodeStore(store_dir)
    slot = PolicySlot(Scripted([0, 0, 0.1, 0], on_call={7: KeyboardInterrupt()}), "ctrl-c")
    writer = store.create(sim_robot.spec, task="drawer-close", instruction="x")
    with pytest.raises(EpisodeInterrupted) as caught:
        run_episode(sim_robot, slot, writer=writer, max_steps=50, seed=0)
    assert isinstance(caught.value, KeyboardInterrupt)
    assert caught.value.result.steps == 7 and caught.value.result.reason == "operator interrupt"
    info = store.info(writer.episode_id)
    assert (info.status, info.length, info.reason, info.success) == ("aborted", 7, "operator interrupt", "unknown")
    assert len(store.open(writer.episode_id).images("corner4")) == 7


def test_stop_event_ends_the_episode_at_the_next_tick(sim_robot: SimRobot, store_dir: Path) -> None:
    store = EpisodeStore(store_dir)
    stop = threading.Event()
    slot = PolicySlot(Scripted([0, 0, 0, 0], on_call={4: stop.set}), "stop")
    writer, result = _record(store, sim_robot, slot, max_steps=50, seed=0, stop_event=stop)
    assert (result.status, result.reason, result.steps) == ("aborted", "operator interrupt", 5)
    assert store.info(writer.episode_id).status == "aborted"


def test_a_nan_action_stops_the_episode_and_the_reason_is_recorded(sim_robot: SimRobot, store_dir: Path) -> None:
    store = EpisodeStore(store_dir)
    policy = Scripted([0, 0, 0, 0], chunk_size=1)
    policy.on_call = {3: lambda: setattr(policy, "value", [0.0, float("nan"), 0.0, 0.0])}
    writer, result = _record(store, sim_robot, PolicySlot(policy, "nan"), max_steps=50, seed=0)
    assert result.status == "aborted" and "non-finite" in result.reason and result.steps == 3
    info = store.info(writer.episode_id)
    assert info.status == "aborted" and "non-finite" in str(info.reason) and info.length == 3


def test_estop_from_another_thread_latches_until_reset(sim_robot: SimRobot, store_dir: Path) -> None:
    store = EpisodeStore(store_dir)
    safety = SafetyFilter(SafetyConfig.preset("sim"), sim_robot.spec)

    def press() -> None:
        button = threading.Thread(target=safety.estop, args=("operator pressed e-stop",))
        button.start()
        button.join()

    slot = PolicySlot(Scripted([0, 0, 0.2, 0], on_call={5: press}), "estop")
    _, result = _record(store, sim_robot, slot, max_steps=50, seed=0, safety=safety)
    assert result.status == "aborted" and result.reason == "e-stop: operator pressed e-stop" and result.steps == 5
    writer, again = _record(store, sim_robot, slot, max_steps=50, seed=0, safety=safety)
    assert again.status == "aborted" and again.steps == 0 and "latched" in again.reason
    assert store.info(writer.episode_id).status == "aborted"  # the refused episode is closed too
    safety.reset()
    _, after = _record(store, sim_robot, slot, max_steps=3, seed=0, safety=safety)
    assert after.status == "complete" and after.steps == 3


def test_a_swap_takes_effect_at_the_next_chunk_boundary(sim_robot: SimRobot, store_dir: Path) -> None:
    store = EpisodeStore(store_dir)
    new = Scripted([0, 0, -0.5, 0], chunk_size=4)
    slot = PolicySlot(Scripted([0, 0, 0.5, 0], chunk_size=4), "v1")

    def swap_from_another_thread() -> None:
        thread = threading.Thread(target=slot.swap, args=(new, "v2"))
        thread.start()
        thread.join()

    slot.policy.on_call = {0: swap_from_another_thread}  # type: ignore[attr-defined]
    writer, result = _record(store, sim_robot, slot, max_steps=8, seed=0)
    z = store.open(writer.episode_id).actions()[:, 2]
    np.testing.assert_allclose(z, [0.5] * 4 + [-0.5] * 4)  # the first chunk ran whole, then the new policy
    assert result.versions == ("v1", "v2") and slot.version == "v2"


def test_watchdog_holds_when_the_policy_answers_late(sim_robot: SimRobot, store_dir: Path) -> None:
    class Slow(Scripted):
        def act(self, obs: Observation, temperature: float = 0.0) -> ActionChunk:
            time.sleep(0.25)  # longer than the watchdog: every action is stale when it is due
            return super().act(obs, temperature)

    store = EpisodeStore(store_dir)
    safety = SafetyConfig(keep_on_hold=(3,), watchdog_s=0.1)
    slot = PolicySlot(Slow([0.5, 0.5, 0.5, 0.5]), "slow")
    writer, result = _record(store, sim_robot, slot, max_steps=3, seed=0, safety=safety, pace=True)
    assert result.safety_events == {"watchdog": 3}
    assert result.missed_deadlines == 3  # each tick took longer than 0.1 s
    np.testing.assert_array_equal(store.open(writer.episode_id).actions(), np.zeros((3, 4), np.float32))


def test_replay_reproduces_a_recorded_episode(sim_robot: SimRobot, store_dir: Path) -> None:
    store = EpisodeStore(store_dir)
    slot = PolicySlot(RandomPolicy(sim_robot.spec, scale=0.5, seed=1), "random")
    first, _ = _record(store, sim_robot, slot, max_steps=10, seed=3)
    replay = load_policy(f"replay:{first.episode_id}", store=store, robot=sim_robot)
    second, result = _record(store, sim_robot, PolicySlot(replay, "replay"), max_steps=30, seed=3)
    assert result.reason == "policy finished" and result.steps == 10
    a, b = store.open(first.episode_id), store.open(second.episode_id)
    np.testing.assert_array_equal(a.actions(), b.actions())
    np.testing.assert_array_equal(a.states(), b.states())  # same seed, same actions: the same trajectory


def test_scripted_chunks_from_lookahead_replay_the_closed_loop_expert(sim_robot: SimRobot, store_dir: Path) -> None:
    store = EpisodeStore(store_dir)
    episodes = []
    for k in (1, 8):
        slot = PolicySlot(ScriptedPolicy(noise=0.1, seed=5, chunk_size=k, robot=sim_robot), f"scripted-k{k}")
        # safety off: a filter that changes an action of an open-loop chunk changes what follows
        writer, result = _record(store, sim_robot, slot, max_steps=30, seed=4, safety=SafetyConfig.preset("off"))
        assert result.steps == 30
        episodes.append(store.open(writer.episode_id))
    closed_loop, chunked = episodes
    np.testing.assert_array_equal(closed_loop.actions(), chunked.actions())
    np.testing.assert_array_equal(closed_loop.states(), chunked.states())  # the lookahead left no trace
    np.testing.assert_array_equal(closed_loop.images("corner4"), chunked.images("corner4"))


def test_a_noisy_scripted_episode_repeats_whatever_ran_before(sim_robot: SimRobot, store_dir: Path) -> None:
    store = EpisodeStore(store_dir)
    slot = PolicySlot(ScriptedPolicy(noise=0.3, seed=1, robot=sim_robot), "scripted")
    first, _ = _record(store, sim_robot, slot, max_steps=6, seed=9)
    _record(store, sim_robot, slot, max_steps=6, seed=10)
    again, _ = _record(store, sim_robot, slot, max_steps=6, seed=9)
    other, _ = _record(
        store, sim_robot, PolicySlot(ScriptedPolicy(noise=0.3, seed=2, robot=sim_robot), "s2"), max_steps=6, seed=9
    )
    a, b, c = (store.open(w.episode_id).actions() for w in (first, again, other))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)  # another policy seed, other noise
