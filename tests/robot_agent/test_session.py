"""``robot_agent.session``: the library under ``flywheel robot run``, the demo and the simulated agent process."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from robot_agent.session import AgentSession, SessionConfig, SessionError

pytest.importorskip("metaworld", reason="the simulated arm (the robot extra)")


def test_a_session_records_its_episodes_with_the_robots_verdict(tmp_path: Path) -> None:
    config = SessionConfig(task="drawer-close", policy="scripted", episodes=2, store=tmp_path / "eps", max_steps=40)
    with AgentSession(config) as session:
        records = list(session.run())
        store = session.store
    assert [r.seed for r in records] == [0, 1]
    for r in records:
        info = store.info(r.episode_id)  # recorded under the id the record names, with its label
        assert info.task == "drawer-close" and str(info.success) == r.success != "unknown"
        assert info.length == r.result.steps > 0


def test_without_a_store_nothing_is_recorded_and_a_stop_ends_the_run(tmp_path: Path) -> None:
    stop = threading.Event()
    config = SessionConfig(task="drawer-close", policy="random", episodes=None, store=None, max_steps=5)
    with AgentSession(config, stop_event=stop) as session:
        records = []
        for record in session.run():
            records.append(record)
            if len(records) == 3:
                stop.set()
    assert len(records) == 3 and all(r.result.steps == 5 for r in records)
    assert not (tmp_path / "flywheel_data").exists()


@pytest.mark.parametrize(
    ("config", "option", "words"),
    [
        (SessionConfig(task="no-such-task", store=None), "--task", "no-such-task"),
        (SessionConfig(policy="server", store=None), "--policy", "--server"),
        (SessionConfig(policy="replay:nothing", store=None), "--policy", "needs an episode store"),
    ],
)
def test_setup_mistakes_name_the_option_to_fix(config: SessionConfig, option: str, words: str) -> None:
    with pytest.raises(SessionError, match=words) as e, AgentSession(config):
        pass
    assert e.value.option == option


def test_a_session_runs_its_policy_on_the_threads_it_is_given(tmp_path: Path) -> None:
    """One thread by default: the control loop's ticks stay clear of a trainer's threads on the same machine."""
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        config = SessionConfig(task="drawer-close", policy="random", episodes=1, store=None, max_steps=2)
        with AgentSession(config) as session:
            list(session.run())
            assert torch.get_num_threads() == 1 == config.threads
        assert torch.get_num_threads() == 2  # as it was: a process that trains afterwards (the demo) keeps its own
    finally:
        torch.set_num_threads(before)
