"""The action-conditioned pixel-space video world model (WMPO §3.2; WoVR, arXiv 2602.13977).

    from trainer.world_model import PixelWorldModel, WorldModelConfig, PRESETS, train_world_model, load_episodes

``train_world_model(store, out, task=..., steps=..., finetune_from=...)`` trains from the Zarr store;
``fit_world_model(episodes, out, ...)`` from episodes already in memory.
"""

from trainer.world_model.config import PRESETS, WorldModelConfig
from trainer.world_model.data import ChunkWindows, RecordedEpisode, load_episodes, split_held_out
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
    "split_held_out",
    "train_world_model",
]
