"""World models by the kind written in their folder: ``load_world_model(folder)`` reads ``manifest.json``'s
``kind`` and loads it with the class registered for that kind (``@register_world_model("kind")``), so the cycle,
its stages and the benchmarks take any world model that follows ``trainer.protocols.WorldModel`` (a latent one
beside today's pixel-space model) without naming its class."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from trainer.protocols import WorldModel


class Loadable(Protocol):
    @classmethod
    def load(cls, path: str | Path, *, sampling_steps: int | None = None, seed: int = 0) -> Any: ...


WORLD_MODELS: dict[str, type[Loadable]] = {}  # filled by @register_world_model, and only by it


def register_world_model(kind: str) -> Callable[[type[Any]], type[Any]]:
    """Class decorator: folders whose manifest says ``kind`` load with this class's ``load``."""

    def wrap(cls: type[Any]) -> type[Any]:
        WORLD_MODELS[kind] = cls
        return cls

    return wrap


def load_world_model(path: str | Path, *, sampling_steps: int | None = None, seed: int = 0) -> WorldModel:
    """The world model saved in ``path``, by its kind; a ValueError names what the folder holds otherwise."""
    from trainer.world_model import model  # noqa: F401  (registers the shipped kinds)

    manifest = Path(path) / "manifest.json"
    try:
        kind = json.loads(manifest.read_text()).get("kind")
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a model folder (no readable manifest.json: {e})") from None
    if kind not in WORLD_MODELS:
        raise ValueError(
            f"{path}: holds a {kind!r}, not a world model; world models: {', '.join(sorted(WORLD_MODELS))}"
        )
    loaded: WorldModel = WORLD_MODELS[kind].load(path, sampling_steps=sampling_steps, seed=seed)
    return loaded
