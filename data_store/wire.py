"""The wire between a robot and the server's remote inference: msgpack, no pickle.

numpy arrays travel as ``{"nd": True, "dtype": str, "shape": [...], "data": raw bytes}``; an observation as a map of
such arrays with its instruction and timestamp. Messages are maps with a ``"type"`` (the protocol:
``robot_agent/remote.py``). Both ends import this module: the robot's client (``robot_agent.remote``) and the
server (``serving/routers/inference.py``), so neither needs the other's code.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

from data_store.schema import Observation

_DTYPES = {"uint8", "uint16", "int32", "int64", "float16", "float32", "float64", "bool"}


class WireError(RuntimeError):
    """A message that breaks the protocol, or an error the other end sent; the message is the reason."""


def encode_array(a: np.ndarray) -> dict[str, Any]:
    a = np.ascontiguousarray(a)
    return {"nd": True, "dtype": a.dtype.name, "shape": list(a.shape), "data": a.tobytes()}


def decode_array(d: Any) -> np.ndarray:
    if not isinstance(d, dict) or not d.get("nd") or d.get("dtype") not in _DTYPES:
        raise WireError(f"expected an encoded array with a dtype in {sorted(_DTYPES)}")
    shape = [int(x) for x in d.get("shape", [])]
    data = d.get("data")
    if not isinstance(data, bytes) or any(x < 0 for x in shape):
        raise WireError("encoded array: data must be bytes and the shape non-negative")
    dtype = np.dtype(d["dtype"])
    if len(data) != dtype.itemsize * int(np.prod(shape, dtype=np.int64)):
        raise WireError(f"encoded array: {len(data)} bytes do not make {d['dtype']} {shape}")
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
        raise WireError("obs: expected a map")
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
        raise WireError(f"obs: {type(e).__name__}: {e}") from e


def pack(message: dict[str, Any]) -> bytes:
    return bytes(msgpack.packb(message, use_bin_type=True))


def unpack(data: bytes) -> dict[str, Any]:
    try:
        message = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as e:
        raise WireError(f"not a msgpack message: {e}") from e
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise WireError("expected a msgpack map with a 'type'")
    return message
