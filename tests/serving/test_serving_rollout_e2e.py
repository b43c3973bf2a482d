"""End to end, as separate processes: the uvicorn server and a simulated robot agent (MuJoCo arm, the
real control loop, ``PolicySyncer``) — rollout, rollback, refused bad artifacts while the robot keeps
its policy, a canary that holds and one that fails, and a server outage the robot rides out."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serving.serving_helpers import SIM_SPEC, Server, restart, start_agent, start_server, upload, wait_until

pytestmark = pytest.mark.slow  # ~50 s on 2 busy cores: two processes, three refusals, two canaries, an outage


def _robot(c: httpx.Client, robot_id: str) -> dict[str, Any]:
    out: dict[str, Any] = c.get(f"/robots/{robot_id}").json()
    return out


def _episodes(c: httpx.Client, robot_id: str, version: str | None = None) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"robot_id": robot_id, "limit": 5000}
    if version:
        params["policy_version"] = version
    out: list[dict[str, Any]] = c.get("/episodes", params=params).json()
    return out


def _events(c: httpx.Client, robot_id: str, action: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = c.get("/audit", params={"robot_id": robot_id, "action": action}).json()
    return out


def _running(c: httpx.Client, robot_id: str, version: str) -> bool:
    r = c.get(f"/robots/{robot_id}")
    return r.status_code == 200 and r.json()["running_version"] == version


def _post_episode(c: httpx.Client, episode_id: str, robot_id: str, version: str, ok: bool) -> None:
    body = {"episode_id": episode_id, "robot_id": robot_id, "policy_version": version, "task": "drawer-close",
            "success": "true" if ok else "false", "length": 10, "ended_at": datetime.now(UTC).isoformat()}  # fmt: skip
    assert c.post("/episodes", json=body).status_code == 201


def test_rollout_rollback_refusals_canary_and_outage(tmp_path: Path, artifacts: dict[str, Path]) -> None:
    server = start_server(tmp_path / "server")
    agent: subprocess.Popen[bytes] | None = None
    try:
        with server.client(server.admin) as admin:
            v = {k: upload(admin, artifacts[k]).json()["policy"] for k in ("v1", "v2", "v3", "v4", "wide", "nan")}
            # A tampered artifact in the server's store: same size, one byte different; the manifest is untouched.
            weights = server.data_dir / "registry" / "artifacts" / v["v3"]["sha256"]
            data = bytearray((weights / "model.safetensors").read_bytes())
            data[-1] ^= 0xFF
            (weights / "model.safetensors").write_bytes(bytes(data))
            assert admin.post("/rollouts", json={"version": v["v1"]["version"]}).status_code == 201  # fleet alias
            agent = start_agent(server, "sim-a", tmp_path / "cache")
            _drive(server, admin, agent, {k: p["version"] for k, p in v.items()})
    finally:
        if agent is not None and agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(timeout=30)
            except subprocess.TimeoutExpired:
                agent.kill()
        server.stop()
    assert agent is not None and agent.returncode == 0, (tmp_path / "agent-sim-a.log").read_text()[-3000:]


def _drive(server: Server, admin: httpx.Client, agent: subprocess.Popen[bytes], v: dict[str, str]) -> None:
    def alive() -> None:
        assert agent.poll() is None, "the agent died"

    # 1. The agent starts with no policy and bootstraps on the fleet's production version.
    wait_until("sim-a running v1", lambda: _running(admin, "sim-a", v["v1"]), 90)
    wait_until("an episode under v1", lambda: _episodes(admin, "sim-a", v["v1"]))

    # 2. Rollout: download, verify, load, probe, swap at a chunk boundary; episodes under v2 follow.
    admin.post("/rollouts", json={"version": v["v2"], "robots": ["sim-a"]})
    wait_until("sim-a running v2", lambda: _running(admin, "sim-a", v["v2"]))
    wait_until("an episode under v2", lambda: _episodes(admin, "sim-a", v["v2"]))
    swap = _events(admin, "sim-a", "swap")[0]
    assert swap["version"] == v["v2"] and swap["detail"]["cached"] is False and swap["detail"]["from"] == v["v1"]

    # 3. Rollback in one call: v1 is still loaded on the robot, so no download.
    r = admin.post("/rollback", json={"robots": ["sim-a"]})
    assert r.json()["moved"] == {"robot:sim-a": v["v1"]}
    wait_until("sim-a back on v1", lambda: _running(admin, "sim-a", v["v1"]))
    assert _events(admin, "sim-a", "swap")[0]["detail"]["cached"] is True

    # 4. Bad versions are refused with a reason; the robot keeps running v1 meanwhile.
    expected = {
        "wide": "action space mismatch",
        "nan": "not finite",
        "v3": "model.safetensors: sha256",  # tampered in the store
    }
    for key, reason in expected.items():
        before = len(_episodes(admin, "sim-a", v["v1"]))
        rollout = admin.post("/rollouts", json={"version": v[key], "robots": ["sim-a"]}).json()

        def refusals(version: str = v[key]) -> list[dict[str, Any]]:
            return [e for e in _events(admin, "sim-a", "swap_refused") if e["version"] == version]

        def more_episodes(n: int = before) -> bool:
            return len(_episodes(admin, "sim-a", v["v1"])) > n

        assert reason in wait_until(f"{key} refused", refusals)[0]["detail"]["reason"]
        wait_until("more episodes under v1", more_episodes)
        robot = _robot(admin, "sim-a")  # the registry takes the refused version back: desired is v1 again
        assert robot["running_version"] == v["v1"] and robot["desired_version"] == v["v1"]
        refused = admin.get(f"/rollouts/{rollout['id']}").json()
        assert refused["status"] == "refused" and reason in refused["reason"], refused
        alive()
    r = admin.post("/rollouts", json={"version": "vla-0000000000000000", "robots": ["sim-a"]})
    assert r.status_code == 404 and "vla-0000000000000000" in r.json()["reason"]

    # 5. A canary that holds: sim-a first, then sim-b (a robot known only to the registry) follows. The tiny
    # untrained policies cannot beat one another, so the outcomes judged are posted here, before sim-a's own
    # (an operator's labels would do the same): sim-b fails 20 of 20 on v1, sim-a succeeds 4 of 4 on v2.
    with server.client(server.operator) as op:
        op.post("/robots", json={"robot_id": "sim-b", "spec": SIM_SPEC.to_json()})
        body = {"version": v["v2"], "robots": ["sim-a", "sim-b"], "canary": 1, "max_episodes": 4, "looks": 1}
        rollout = admin.post("/rollouts", json=body).json()
        assert admin.get("/robots/sim-b/desired").json()["version"] == v["v1"]
        for i, (robot, version, ok) in enumerate([("sim-b", v["v1"], False)] * 20 + [("sim-a", v["v2"], True)] * 4):
            _post_episode(op, f"judged-{i}", robot, version, ok)
    wait_until("the canary to hold", lambda: admin.get(f"/rollouts/{rollout['id']}").json()["status"] != "canary")
    assert admin.get("/robots/sim-b/desired").json()["version"] == v["v2"]
    wait_until("sim-a running v2", lambda: _running(admin, "sim-a", v["v2"]))
    # sim-b has no agent, so it never says it runs v2: the rollout is not complete, and says who it waits for
    promoted = admin.get(f"/rollouts/{rollout['id']}").json()
    assert promoted["status"] == "rolling_out", promoted
    assert {r: st["state"] for r, st in promoted["robot_states"].items()} == {"sim-a": "running", "sim-b": "pending"}

    # 6. A canary that fails: sim-a's own episodes on v4, and no gain over the fleet by the last look (sim-b
    # reports nothing, so there is nothing to beat): sim-a goes back to v2.
    body = {"version": v["v4"], "robots": ["sim-a", "sim-b"], "canary": 1, "max_episodes": 2, "looks": 1}
    rollout = admin.post("/rollouts", json=body).json()
    wait_until("sim-a running v4", lambda: _running(admin, "sim-a", v["v4"]))

    def halted() -> dict[str, Any] | None:
        got: dict[str, Any] = admin.get(f"/rollouts/{rollout['id']}").json()
        return got if got["status"] == "halted" else None

    assert "no evidence of a gain by the last look 1 of 1" in wait_until("the canary to fail", halted)["reason"]
    wait_until("sim-a back on v2", lambda: _running(admin, "sim-a", v["v2"]))
    assert admin.get("/robots/sim-b/desired").json()["version"] == v["v2"]

    # 7. The server goes down: the robot keeps running v2; its episode reports reach the index later.
    seen = {e["episode_id"] for e in _episodes(admin, "sim-a")}
    server.stop()
    down_at = datetime.now(UTC)
    time.sleep(3.0)
    alive()
    restart(server)
    up_at = datetime.now(UTC)

    def during_outage() -> list[dict[str, Any]]:
        new = [e for e in _episodes(admin, "sim-a") if e["episode_id"] not in seen]
        return [e for e in new if down_at <= datetime.fromisoformat(e["ended_at"]) <= up_at]

    missed = wait_until("episodes ended during the outage in the index", during_outage)
    assert {e["policy_version"] for e in missed} == {v["v2"]}
    assert _running(admin, "sim-a", v["v2"])
