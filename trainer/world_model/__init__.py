"""The action-conditioned pixel-space video world model (WMPO §3.2; WoVR, arXiv 2602.13977).

    from trainer.world_model import PixelWorldModel, WorldModelConfig, PRESETS, train_world_model, load_episodes

``train_world_model(store, out, task=..., steps=..., finetune_from=...)`` trains from the Zarr store;
``fit_world_model(episodes, out, ...)`` from episodes already in memory; ``load_world_model(folder)`` loads any
world model by the kind its folder names.
"""

from trainer.world_model.config import PRESETS, WorldModelConfig
from trainer.world_model.data import ChunkWindows, RecordedEpisode, load_episodes, split_held_out
from trainer.world_model.kinds import load_world_model, register_world_model
from trainer.world_model.model import PixelWorldModel, RolloutState
from trainer.world_model.train import TrainConfig, TrainResult, fit_world_model, train_world_model

__all__ = [
    "PRESETS",
    "ChunkWindows",
    "PixelWorldModel",
    "RecordedEpisode",
    "RolloutState",
    "TrainConfig",
    "TrainResult",
    "WorldModelConfig",
    "fit_world_model",
    "load_episodes",
    "load_world_model",
    "register_world_model",
    "split_held_out",
    "train_world_model",
]
