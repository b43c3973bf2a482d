"""PolicySlot: swaps take effect at chunk boundaries only, atomically, with an instant rollback."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from data_store.schema import ActionChunk, Observation, RobotSpec
from robot_agent.slot import PolicySlot

OBS = Observation.fake(RobotSpec(action_dim=1, state_dim=2, action_low=(-9.0,), action_high=(9.0,)))


class Named:
    """A policy whose chunks say who made them."""

    chunk_size, action_dim = 4, 1

    def __init__(self, name: str) -> None:
        self.name = name

    def act(self, obs: Observation, temperature: float = 0.0) -> ActionChunk:
        return ActionChunk(np.full((4, 1), float(self.name.removeprefix("v"))), policy_version=self.name)

    def reset(self) -> None:
        pass


def test_swap_waits_for_the_chunk_boundary_while_an_episode_runs() -> None:
    a, b = Named("v1"), Named("v2")
    slot = PolicySlot(a, "v1")
    with slot.running():
        assert slot.at_chunk_boundary() == (a, "v1")
        slot.swap(b, "v2")
        assert slot.version == "v1" and slot.pending_version == "v2"  # mid-chunk: unchanged
        assert slot.at_chunk_boundary() == (b, "v2")
    assert slot.version == "v2" and slot.pending_version is None and slot.previous_version == "v1"


def test_swap_is_immediate_when_no_episode_runs() -> None:
    slot = PolicySlot(Named("v1"), "v1")
    slot.swap(Named("v2"), "v2")
    assert slot.version == "v2" and slot.swaps == 1


def test_a_newer_swap_replaces_the_staged_one() -> None:
    slot = PolicySlot(Named("v1"), "v1")
    with slot.running():
        slot.swap(Named("v2"), "v2")
        slot.swap(Named("v3"), "v3")
        assert slot.at_chunk_boundary()[1] == "v3"
    assert slot.previous_version == "v1"


def test_rollback_brings_back_the_previous_policy_object() -> None:
    a, b = Named("v1"), Named("v2")
    slot = PolicySlot(a, "v1")
    with pytest.raises(ValueError, match="no previous"):
        slot.rollback()
    slot.swap(b, "v2")
    with slot.running():
        assert slot.rollback() == "v1"
        assert slot.version == "v2"
        policy, version = slot.at_chunk_boundary()
    assert policy is a and version == "v1"


def test_wait_until_active_wakes_when_the_loop_reaches_a_boundary() -> None:
    slot = PolicySlot(Named("v1"), "v1")
    woke: list[bool] = []
    with slot.running():
        slot.swap(Named("v2"), "v2")
        waiter = threading.Thread(target=lambda: woke.append(slot.wait_until_active("v2", timeout_s=10)))
        waiter.start()
        slot.at_chunk_boundary()
        waiter.join(timeout=10)
    assert woke == [True]
    assert slot.wait_until_active("v9", timeout_s=0.01) is False


def test_swaps_from_another_thread_never_tear_a_chunk_or_a_pair() -> None:
    policies = [Named(f"v{i}") for i in range(1, 9)]
    slot = PolicySlot(policies[0], "v1")
    stop = threading.Event()

    def swapper() -> None:
        i = 0
        while not stop.is_set():
            p = policies[i % len(policies)]
            slot.swap(p, p.name)
            i += 1

    chunks: list[tuple[str, np.ndarray]] = []
    with slot.running():
        thread = threading.Thread(target=swapper)
        thread.start()
        try:
            # run chunks until every policy has run (the swapper thread needs the GIL now and then)
            while len({v for v, _ in chunks}) < len(policies) and len(chunks) < 1_000_000:
                policy, version = slot.at_chunk_boundary()
                chunk = policy.act(OBS)
                chunks.append((version, chunk.actions))
                time.sleep(0)
        finally:
            stop.set()
            thread.join()
    for version, actions in chunks:
        # the pair is consistent (never the policy of one swap with the version of another) and the
        # chunk comes whole from that policy
        assert np.all(actions == float(version.removeprefix("v")))
    assert len({v for v, _ in chunks}) == len(policies)  # the swaps did happen
    assert slot.swaps > 1
