"""Remote inference over the websocket against a real server: chunks, hot swap behind the socket,
a refused version (NaN health probe) while the old one keeps serving, and protocol errors."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from data_store.schema import Observation
from data_store.wire import decode_array, encode_array, pack, unpack
from robot_agent.remote import RemoteError, RemotePolicy
from tests.serving.serving_helpers import SIM_SPEC, Server, start_agent, upload, wait_until


def test_codec_round_trips_arrays_without_pickle() -> None:
    for a in (np.arange(12, dtype=np.float32).reshape(3, 4), np.zeros((2, 2, 3), np.uint8), np.ones(0, np.uint16)):
        back = decode_array(unpack(pack({"type": "x", "a": encode_array(a)}))["a"])
        assert back.dtype == a.dtype and back.shape == a.shape and np.array_equal(back, a)
    with pytest.raises(RemoteError, match="bytes do not make"):
        decode_array({"nd": True, "dtype": "float32", "shape": [3], "data": b"\x00" * 8})
    with pytest.raises(RemoteError, match="dtype"):
        decode_array({"nd": True, "dtype": "object", "shape": [1], "data": b"\x00" * 8})


def _wait_for_version(policy: RemotePolicy, obs: Observation, version: str, timeout_s: float = 60) -> int:
    """Act until chunks come from ``version``; returns how many chunks that took. Every chunk must be sound."""
    deadline = time.monotonic() + timeout_s
    n = 0
    while time.monotonic() < deadline:
        chunk = policy.act(obs)
        n += 1
        assert chunk.actions.shape == (8, 4) and np.all(np.isfinite(chunk.actions))
        if chunk.policy_version == version:
            return n
    raise AssertionError(f"still serving {policy.version}, not {version}, after {timeout_s} s")


@pytest.mark.slow  # ~20 s: the server imports torch and loads four versions
def test_remote_policy_hot_swaps_and_refuses_nan(server: Server, artifacts: dict[str, Path]) -> None:
    with server.client(server.admin) as admin, server.client(server.operator) as op:
        v1, v2, nan = (upload(admin, artifacts[k]).json()["policy"]["version"] for k in ("v1", "v2", "nan"))
        assert op.post("/robots", json={"robot_id": "gpu-less", "spec": SIM_SPEC.to_json()}).status_code == 201
        assert admin.post("/rollouts", json={"version": v1, "robots": ["gpu-less"]}).status_code == 201
        policy = RemotePolicy(server.url, "gpu-less", token=server.operator)
        try:
            assert (policy.version, policy.chunk_size, policy.action_dim) == (v1, 8, 4)
            obs = Observation.fake(SIM_SPEC)
            assert policy.act(obs).policy_version == v1
            admin.post("/rollouts", json={"version": v2, "robots": ["gpu-less"]})
            _wait_for_version(policy, obs, v2)
            admin.post("/rollouts", json={"version": nan, "robots": ["gpu-less"]})
            deadline = time.monotonic() + 60
            refused: list[dict[str, Any]] = []
            while not refused and time.monotonic() < deadline:
                assert policy.act(obs).policy_version == v2  # the old version keeps serving
                refused = admin.get("/audit", params={"robot_id": "gpu-less", "action": "swap_refused"}).json()
            assert refused and refused[0]["version"] == nan
            assert "not finite" in str(refused[0]["detail"]["reason"])
            policy.reset()
            admin.post("/rollback", json={"robots": ["gpu-less"], "to": v1})
            _wait_for_version(policy, obs, v1)
            swaps = admin.get("/audit", params={"robot_id": "gpu-less", "action": "swap"}).json()
            assert [e["version"] for e in swaps][:3] == [v1, v2, v1]
            policy.ws.send(b"\x93garbage")
            with pytest.raises(RemoteError, match="not a msgpack message"):
                policy._receive()
        finally:
            policy.close()


def test_remote_inference_needs_an_operator_and_a_version(server: Server) -> None:
    with pytest.raises(RemoteError, match="operator token"):
        RemotePolicy(server.url, "gpu-less", token=server.viewer)
    with server.client(server.operator) as op:
        op.post("/robots", json={"robot_id": "fresh", "spec": SIM_SPEC.to_json()})
    with pytest.raises(RemoteError, match="no desired version"):
        RemotePolicy(server.url, "fresh", token=server.operator)


@pytest.mark.slow  # ~20 s: an agent process with the simulated arm
def test_agent_process_with_remote_inference(server: Server, artifacts: dict[str, Path], tmp_path: Path) -> None:
    """A robot without a local policy runtime: the agent loop takes its chunks over the socket, its
    episodes and heartbeats name the version the server served, and a rollout changes it."""
    with server.client(server.admin) as admin:
        v1, v2 = (upload(admin, artifacts[k]).json()["policy"]["version"] for k in ("v1", "v2"))
        agent = start_agent(server, "remote-arm", tmp_path / "cache", "--remote")
        try:
            wait_until("remote-arm registered", lambda: admin.get("/robots/remote-arm").status_code == 200)
            admin.post("/rollouts", json={"version": v1, "robots": ["remote-arm"]})

            def episodes(version: str) -> list[dict[str, Any]]:
                params = {"robot_id": "remote-arm", "policy_version": version}
                found: list[dict[str, Any]] = admin.get("/episodes", params=params).json()
                return found

            wait_until("an episode under v1", lambda: episodes(v1), 90)
            admin.post("/rollouts", json={"version": v2, "robots": ["remote-arm"]})
            wait_until("an episode under v2", lambda: episodes(v2), 60)
            wait_until("heartbeats naming v2", lambda: admin.get("/robots/remote-arm").json()["running_version"] == v2)
            assert not (tmp_path / "cache" / v2).exists()  # nothing was downloaded to the robot
            swaps = admin.get("/audit", params={"robot_id": "remote-arm", "action": "swap"}).json()
            assert swaps[0]["detail"]["remote"] is True and swaps[0]["version"] == v2
        finally:
            agent.send_signal(signal.SIGTERM)
            agent.wait(timeout=30)
        assert agent.returncode == 0, (tmp_path / "agent-remote-arm.log").read_text()[-2000:]
