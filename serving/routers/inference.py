"""Remote inference: ``/ws/infer/{robot_id}`` serves action chunks to a robot without a local GPU.

Protocol: ``robot_agent/remote.py``; codec: ``data_store.wire`` (msgpack, arrays as raw bytes, dtype and shape,
no pickle).
The same hot swap as on a robot runs behind the socket: before each chunk the server looks up the
robot's desired version (at most every ``check_every_s``); a version not loaded yet is checked, loaded
and health-probed against the robot's registered spec in a background thread (``prepare_policy``)
while the old one keeps serving; the next chunk after it is ready comes from the new version (a chunk
boundary). A refused version is reported with its reason and the old one keeps serving. Swaps and
refusals go into the audit log as the robot's own, so "which version ran on R at T" stays true.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from data_store.registry import NotFound, Registry, fleet, policies, tokens
from data_store.schema import RobotSpec
from data_store.wire import WireError, decode_observation, encode_array, pack, unpack
from serving.auth import authenticate
from serving.metrics import CHUNKS, SWAPS
from vla.checks import Refused, prepare_policy
from vla.protocol import Policy

router = APIRouter(tags=["inference"])
log = logging.getLogger("serving.inference")


class PolicyServer:
    """Loaded policies shared by all connections (an LRU of ``cache``), loads in a background thread."""

    def __init__(self, registry: Registry, *, cache: int = 3, check_every_s: float = 0.25) -> None:
        self.registry, self.cache, self.check_every_s = registry, cache, check_every_s
        self._loaded: OrderedDict[tuple[str, str], Policy] = OrderedDict()
        self._loading: dict[tuple[str, str], Future[Policy]] = {}
        self._refused: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="policy-load")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def desired(self, robot_id: str) -> tuple[str | None, RobotSpec]:
        with self.registry.session() as s:
            robot = fleet.get_robot(s, robot_id)
            return policies.desired_version(s, robot_id), RobotSpec.from_json(robot.spec)

    def get(self, version: str, spec: RobotSpec) -> Policy | None:
        """The policy if loaded; otherwise start loading it and return None. Raises ``Refused``."""
        key = (version, repr(spec.to_json()))
        with self._lock:
            if key in self._refused:
                raise Refused(self._refused[key])
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
            future = self._loading.get(key)
            if future is None:
                self._loading[key] = self._pool.submit(self._load, version, spec)
                return None
            if not future.done():
                return None
            del self._loading[key]
            try:
                policy = future.result()
            except Refused as e:
                self._refused[key] = str(e)
                raise
            self._loaded[key] = policy
            while len(self._loaded) > self.cache:
                self._loaded.popitem(last=False)
            return policy

    def _load(self, version: str, spec: RobotSpec) -> Policy:
        with self.registry.session() as s:
            try:
                folder = Path(policies.get_policy(s, version).artifact_path)
            except NotFound as e:
                raise Refused(str(e)) from e
        return prepare_policy(folder, spec)

    def report(self, robot_id: str, version: str, ok: bool, reason: str = "", previous: str | None = None) -> None:
        detail: dict[str, Any] = {"remote": True, "from": previous}
        with self.registry.session() as s:
            fleet.report_swap(s, robot_id, version=version, ok=ok, reason=reason, detail=detail)
        SWAPS.labels(outcome="taken" if ok else "refused").inc()


class Connection:
    """One robot's socket: the version it is served, switched at chunk boundaries."""

    def __init__(self, server: PolicyServer, robot_id: str) -> None:
        self.server, self.robot_id = server, robot_id
        self.policy: Policy | None = None
        self.version: str | None = None
        self._checked = 0.0
        self._reported_refusals: set[str] = set()

    def refresh(self) -> None:
        """Move to the desired version if it is ready (never blocks while a policy is serving)."""
        now = time.monotonic()
        if self.policy is not None and now - self._checked < self.server.check_every_s:
            return
        self._checked = now
        version, spec = self.server.desired(self.robot_id)
        if version is None or version == self.version:
            return
        try:
            policy = self.server.get(version, spec)
        except Refused as e:
            if version not in self._reported_refusals:
                self._reported_refusals.add(version)
                self.server.report(self.robot_id, version, ok=False, reason=str(e))
            return
        if policy is None:
            return
        previous, self.policy, self.version = self.version, policy, version
        self.server.report(self.robot_id, version, ok=True, previous=previous)

    def wait_first(self, timeout_s: float) -> None:
        """Block (in a worker thread) until there is a first policy to serve, or raise with why not."""
        deadline = time.monotonic() + timeout_s
        while self.policy is None:
            self._checked = 0.0
            self.refresh()
            if self.policy is not None:
                return
            version, _ = self.server.desired(self.robot_id)
            if version is None:
                raise WireError(f"robot {self.robot_id!r} has no desired version (roll one out first)")
            if version in self._reported_refusals:
                raise WireError(f"{version} refused for {self.robot_id}: see the audit log")
            if time.monotonic() > deadline:
                raise WireError(f"{version} did not load within {timeout_s} s")
            time.sleep(0.05)


@router.websocket("/ws/infer/{robot_id}")
async def infer(websocket: WebSocket, robot_id: str) -> None:
    app = websocket.app
    header = websocket.headers.get("authorization", "")
    token = header.removeprefix("Bearer ").strip() or websocket.query_params.get("token")
    caller = authenticate(app.state.registry, token, auth=app.state.settings.auth)
    await websocket.accept()
    if caller is None or not tokens.role_allows(caller.role, "operator"):
        await _fail(websocket, "remote inference needs an operator token (Authorization: Bearer <token>)", 4401)
        return
    server: PolicyServer = app.state.inference
    conn = Connection(server, robot_id)
    try:
        await run_in_threadpool(conn.wait_first, 60.0)
    except (WireError, NotFound) as e:
        await _fail(websocket, str(e), 4404)
        return
    assert conn.policy is not None
    await websocket.send_bytes(
        pack(
            {
                "type": "ready",
                "version": conn.version,
                "chunk_size": conn.policy.chunk_size,
                "action_dim": conn.policy.action_dim,
            }
        )
    )
    try:
        while True:
            data = await websocket.receive_bytes()
            try:
                message = unpack(data)
                if message["type"] == "reset":
                    conn.policy.reset()
                    continue
                if message["type"] != "act":
                    raise WireError(f"unknown message type {message['type']!r}")
                obs = decode_observation(message.get("obs"))
                await run_in_threadpool(conn.refresh)  # a chunk boundary: the swap point
                policy, version = conn.policy, conn.version
                chunk = await run_in_threadpool(policy.act, obs, float(message.get("temperature", 0.0)))
                CHUNKS.inc()
                await websocket.send_bytes(
                    pack({"type": "chunk", "actions": encode_array(chunk.actions), "version": version})
                )
            except (WireError, ValueError, TypeError, KeyError) as e:
                await websocket.send_bytes(pack({"type": "error", "reason": f"{type(e).__name__}: {e}"}))
    except WebSocketDisconnect:
        return


async def _fail(websocket: WebSocket, reason: str, code: int) -> None:
    await websocket.send_bytes(pack({"type": "error", "reason": reason}))
    await asyncio.sleep(0)
    await websocket.close(code=code, reason=reason[:120])
