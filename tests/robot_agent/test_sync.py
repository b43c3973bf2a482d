"""``robot_agent.sync`` in-process against a real server: the health probe's refusals, swapping at an
episode boundary under the real control loop, and a robot that starts while the server is down."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from data_store.schema import ActionChunk, Observation
from robot_agent.slot import PolicySlot
from robot_agent.sync import PolicySyncer, SyncConfig
from tests.serving.serving_helpers import SIM_SPEC, Server, free_port, make_artifact, start_server, upload
from vla.checks import Refused, health_probe


class ChunkPolicy:
    """Gives the same chunk for every observation: a test input for the health probe."""

    chunk_size, action_dim = 8, 4

    def __init__(self, actions: np.ndarray) -> None:
        self.actions = actions

    def act(self, obs: Observation, temperature: float = 0.0) -> ActionChunk:
        return ActionChunk(actions=self.actions)

    def reset(self) -> None:
        pass


@pytest.mark.parametrize(
    ("actions", "reason"),
    [
        (np.full((8, 4), np.nan, np.float32), "not finite"),
        (np.zeros((8, 7), np.float32), "expected [K, 4]"),
        (np.full((8, 4), 3.0, np.float32), "leave the robot's bounds"),
    ],
)
def test_health_probe_refuses_bad_chunks(actions: np.ndarray, reason: str) -> None:
    with pytest.raises(Refused, match=reason.replace("[", r"\[").replace("]", r"\]")):
        health_probe(ChunkPolicy(actions), SIM_SPEC)
    health_probe(ChunkPolicy(np.zeros((8, 4), np.float32)), SIM_SPEC)  # a sound chunk passes


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str, str]]:
    root = tmp_path_factory.mktemp("sync")
    v1, v2 = make_artifact(root / "a1", 11), make_artifact(root / "a2", 12)
    server = start_server(root / "server")
    with server.client(server.admin) as admin:
        for folder in (root / "a1", root / "a2"):
            assert upload(admin, folder).status_code == 201
    yield server, v1, v2
    server.stop()


def test_episode_boundary_swaps_only_between_episodes(served: tuple[Server, str, str], tmp_path: Path) -> None:
    from robot_agent.loop import Runtime
    from robot_agent.robots.base import make_robot

    server, v1, v2 = served
    with server.client(server.operator) as op:
        op.post("/robots", json={"robot_id": "ep-bound", "spec": SIM_SPEC.to_json()})
    with server.client(server.admin) as admin:
        admin.post("/rollouts", json={"version": v1, "robots": ["ep-bound"]})
    config = SyncConfig(server.url, "ep-bound", tmp_path / "cache", token=server.operator, boundary="episode")
    robot = make_robot("sim", task="drawer-close", max_steps=24)
    robot.connect()
    syncer = PolicySyncer(None, robot.spec, config)
    try:
        policy, version = syncer.bootstrap(timeout_s=60)
        slot = PolicySlot(policy, version)
        syncer.attach(slot)
        assert version == v1
        runtime = Runtime(robot, slot)

        class RollOutMidEpisode:
            """At step 3 of the episode: roll v2 out and let the syncer prepare it."""

            def on_episode_start(self, obs: Observation) -> None: ...

            def on_step(self, obs: Observation, action: np.ndarray, info: object) -> None:
                if getattr(info, "step", None) == 3:
                    with server.client(server.admin) as admin:
                        admin.post("/rollouts", json={"version": v2, "robots": ["ep-bound"]})
                    self.said = syncer.sync_once()

            def on_episode_end(self, result: object) -> None: ...

        sub = RollOutMidEpisode()
        result = runtime.run_episode(seed=0, subscribers=[sub])
        assert "next episode boundary" in sub.said
        assert result.versions == (v1,) and slot.version == v1  # prepared, but not mid-episode
        assert syncer.at_episode_boundary() == f"swapped to {v2}"
        result = runtime.run_episode(seed=1)
        assert result.versions == (v2,)
        with server.client(server.viewer) as viewer:
            swap = viewer.get("/audit", params={"robot_id": "ep-bound", "action": "swap"}).json()[0]
            assert swap["version"] == v2 and swap["detail"]["from"] == v1
    finally:
        syncer.stop()
        robot.disconnect()


def test_robot_keeps_its_policy_while_the_server_is_down(served: tuple[Server, str, str], tmp_path: Path) -> None:
    server, v1, _ = served
    slot = PolicySlot(ChunkPolicy(np.zeros((8, 4), np.float32)), "local")
    config = SyncConfig(f"http://127.0.0.1:{free_port()}", "lonely", tmp_path / "cache", token=server.operator)
    syncer = PolicySyncer(slot, SIM_SPEC, config)
    assert syncer.sync_once().startswith("offline: keep running local")
    assert slot.version == "local" and not syncer.status.online
    syncer.http.close()
    # The server comes back (here: the syncer is pointed at it): the robot registers, the queued
    # episode reaches the index, and the robot moves to the version rolled out meanwhile.
    with server.client(server.admin) as admin:
        syncer = PolicySyncer(slot, SIM_SPEC, config)
        try:
            syncer.report_episode("ep-offline", version="local", task="drawer-close", success=None, length=5)
            assert syncer.sync_once().startswith("offline")
            syncer.http.base_url = httpx.URL(server.url)
            assert syncer.sync_once() == "up to date"  # registered itself on the heartbeat's 404
            assert admin.get("/robots/lonely").json()["spec"] == SIM_SPEC.to_json()
            admin.post("/rollouts", json={"version": v1, "robots": ["lonely"]})
            assert syncer.sync_once() == f"swapped to {v1}"
            assert slot.version == v1 and syncer.sync_once() == "up to date"
            episodes = admin.get("/episodes", params={"robot_id": "lonely"}).json()
            assert [(e["episode_id"], e["policy_version"]) for e in episodes] == [("ep-offline", "local")]
        finally:
            syncer.stop()


def test_reports_from_two_threads_are_each_sent_once(tmp_path: Path) -> None:
    """The robot's thread and the sync thread both flush the report queue: every report reaches the
    server exactly once, in no thread an error (the first promoted demo died on ``pop from empty list``)."""
    import threading
    import time

    config = SyncConfig(server="http://flywheel.invalid", robot_id="r0", cache_dir=tmp_path / "cache")
    syncer = PolicySyncer(None, SIM_SPEC, config)
    received: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        time.sleep(0.002)  # a real round trip: both threads are inside the flush at once
        received.append(request.read().decode())
        return httpx.Response(200, json={})

    syncer.http = httpx.Client(base_url=config.server, transport=httpx.MockTransport(handler))
    errors: list[BaseException] = []

    def report(who: str) -> None:
        try:
            for i in range(40):
                syncer._report({"version": f"{who}-{i}", "ok": True, "at": "", "detail": {}})
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=report, args=(who,)) for who in ("robot", "sync")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    versions = sorted(json.loads(body)["version"] for body in received)
    assert versions == sorted(f"{who}-{i}" for who in ("robot", "sync") for i in range(40))
    assert syncer._reports == []
