"""Remote inference: a ``Policy`` whose chunks come from the server over a websocket.

For a robot without a local GPU (and without torch). The wire is msgpack (``data_store.wire``, no pickle). Messages:

    robot → server   {"type": "act", "obs": <observation>, "temperature": float}
                     {"type": "reset"}
    server → robot   {"type": "ready", "version", "chunk_size", "action_dim"}     (once, on connect)
                     {"type": "chunk", "actions": float32 [K, A], "version": str}
                     {"type": "error", "reason": str}

The server hot-swaps behind the socket: ``chunk["version"]`` says which version made each chunk, and
``RemotePolicy.version`` follows it, so heartbeats and episodes name the version that really ran.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from data_store.schema import ActionChunk, Observation
from data_store.wire import WireError as RemoteError
from data_store.wire import decode_array, encode_observation, pack, unpack

__all__ = ["RemoteError", "RemotePolicy"]


class RemotePolicy:
    """``vla.protocol.Policy`` over the server's ``/ws/infer/{robot_id}`` websocket."""

    def __init__(self, server: str, robot_id: str, *, token: str | None = None, timeout_s: float = 30.0) -> None:
        from websockets.sync.client import connect

        url = server.replace("http://", "ws://").replace("https://", "wss://").rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else None
        self.timeout_s = timeout_s
        self._stack = ExitStack()
        self.ws = self._stack.enter_context(
            connect(f"{url}/ws/infer/{robot_id}", additional_headers=headers, open_timeout=timeout_s)
        )
        try:
            ready = self._receive()
        except BaseException:
            self._stack.close()
            raise
        if ready["type"] != "ready":
            raise RemoteError(f"expected 'ready', got {ready['type']!r}")
        self.version: str = str(ready["version"])
        self.chunk_size: int = int(ready["chunk_size"])
        self.action_dim: int = int(ready["action_dim"])

    def act(self, obs: Observation, temperature: float = 0.0) -> ActionChunk:
        self.ws.send(pack({"type": "act", "obs": encode_observation(obs), "temperature": float(temperature)}))
        reply = self._receive()
        if reply["type"] != "chunk":
            raise RemoteError(f"expected 'chunk', got {reply['type']!r}")
        self.version = str(reply["version"])
        return ActionChunk(actions=decode_array(reply["actions"]), policy_version=self.version)

    def reset(self) -> None:
        self.ws.send(pack({"type": "reset"}))

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> RemotePolicy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _receive(self) -> dict[str, Any]:
        data = self.ws.recv(timeout=self.timeout_s)
        message = unpack(data if isinstance(data, bytes) else data.encode())
        if message["type"] == "error":
            raise RemoteError(str(message.get("reason")))
        return message
