"""Remote inference: a ``Policy`` whose chunks come from the server over a websocket.

For a robot without a local GPU (and without torch). The wire is msgpack; numpy arrays travel as
``{"nd": True, "dtype": str, "shape": [...], "data": raw bytes}`` — no pickle. Messages:

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

import msgpack
import numpy as np

from data_store.schema import ActionChunk, Observation

_DTYPES = {"uint8", "uint16", "int32", "int64", "float16", "float32", "float64", "bool"}


class RemoteError(RuntimeError):
    """The server refused a request or broke the protocol; the message is its reason."""


def encode_array(a: np.ndarray) -> dict[str, Any]:
    a = np.ascontiguousarray(a)
    return {"nd": True, "dtype": a.dtype.name, "shape": list(a.shape), "data": a.tobytes()}


def decode_array(d: Any) -> np.ndarray:
    if not isinstance(d, dict) or not d.get("nd") or d.get("dtype") not in _DTYPES:
        raise RemoteError(f"expected an encoded array with a dtype in {sorted(_DTYPES)}")
    shape = [int(x) for x in d.get("shape", [])]
    data = d.get("data")
    if not isinstance(data, bytes) or any(x < 0 for x in shape):
        raise RemoteError("encoded array: data must be bytes and the shape non-negative")
    dtype = np.dtype(d["dtype"])
    if len(data) != dtype.itemsize * int(np.prod(shape, dtype=np.int64)):
        raise RemoteError(f"encoded array: {len(data)} bytes do not make {d['dtype']} {shape}")
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def encode_observation(obs: Observation) -> dict[str, Any]:
    return {
        "images": {k: encode_array(v) for k, v in obs.images.items()},
        "depth": {k: encode_array(v) for k, v in (obs.depth or {}).items()},
        "state": encode_array(obs.state),
        "instruction": obs.instruction,
        "timestamp": float(obs.timestamp),
    }


def decode_observation(d: Any) -> Observation:
    if not isinstance(d, dict):
        raise RemoteError("obs: expected a map")
    try:
        depth = {str(k): decode_array(v) for k, v in (d.get("depth") or {}).items()}
        return Observation(
            images={str(k): decode_array(v) for k, v in d["images"].items()},
            state=decode_array(d["state"]),
            instruction=str(d["instruction"]),
            timestamp=float(d["timestamp"]),
            depth=depth or None,
        )
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise RemoteError(f"obs: {type(e).__name__}: {e}") from e


def pack(message: dict[str, Any]) -> bytes:
    return bytes(msgpack.packb(message, use_bin_type=True))


def unpack(data: bytes) -> dict[str, Any]:
    try:
        message = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as e:
        raise RemoteError(f"not a msgpack message: {e}") from e
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise RemoteError("expected a msgpack map with a 'type'")
    return message


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
