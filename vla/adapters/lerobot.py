"""A LeRobot policy (ACT, Diffusion, SmolVLA, pi0, ...) as a ``vla.protocol.Policy``.

``LeRobotPolicy.from_pretrained(path)`` loads a local LeRobot checkpoint folder (``config.json``,
``model.safetensors``, ``policy_preprocessor.json`` / ``policy_postprocessor.json``) with LeRobot's own
factory and processors, and maps our ``Observation`` to LeRobot's batch:

- ``observation.state``: float32 ``[1, S]``;
- ``observation.images.<camera>``: float32 ``[1, 3, H, W]`` in ``[0, 1]`` (one entry per camera);
- ``task``: ``[instruction]``.

``act`` returns LeRobot's whole action chunk (``predict_action_chunk``), unnormalised by its
postprocessor, float32 ``[K, A]``. LeRobot's action heads are continuous (regression, diffusion or
flow matching), so there are no action tokens and no ``sample``/``log_prob``: this adapter is a
``Policy`` the robot can run, not a ``TrainablePolicy`` GRPO can train.

lerobot >= 0.5 needs Python >= 3.12, so it is an optional extra; on Python 3.11 lerobot 0.4.4 runs in a venv of
its own (``scripts/setup_lerobot.sh``), where the test command runs a lerobot policy through this adapter on our robot
(``tests/against_lerobot``). Without lerobot, ``MissingDependency`` gives the install line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from data_store.optional import MissingDependency
from data_store.schema import ActionChunk, Observation

INSTALL = (
    "pip install 'vla-flywheel[lerobot]'   # lerobot >= 0.5, Python >= 3.12\n"
    "    on Python 3.11: bash scripts/setup_lerobot.sh   # lerobot 0.4.4 in .venv-lerobot (docs/policy.md)"
)


def require_lerobot() -> Any:
    """The ``lerobot`` module, or ``MissingDependency`` with the install line."""
    try:
        import lerobot
    except ImportError:
        raise MissingDependency("lerobot", INSTALL) from None
    return lerobot


class LeRobotPolicy:
    """``Policy`` over a LeRobot ``PreTrainedPolicy`` and its pre/post processors (see the module docstring)."""

    def __init__(self, policy: Any, preprocessor: Any, postprocessor: Any, *, version: str = "lerobot") -> None:
        self.policy, self.preprocessor, self.postprocessor = policy, preprocessor, postprocessor
        self.version = version
        config = policy.config
        steps: Any = getattr(config, "n_action_steps", None) or getattr(config, "chunk_size", 1)
        self.chunk_size = int(steps)
        self.action_dim = int(config.output_features["action"].shape[0])

    @classmethod
    def from_pretrained(cls, path: str | Path, *, device: str = "cpu") -> LeRobotPolicy:
        require_lerobot()
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.policies.factory import get_policy_class, make_pre_post_processors

        path = Path(path)
        config = PreTrainedConfig.from_pretrained(str(path))
        config.device = device
        policy = get_policy_class(config.type).from_pretrained(str(path), config=config)
        policy.eval()
        pre, post = make_pre_post_processors(policy_cfg=config, pretrained_path=str(path))
        return cls(policy, pre, post, version=f"lerobot:{config.type}:{path.name}")

    def to_batch(self, obs: Observation) -> dict[str, Any]:
        """Our observation -> LeRobot's raw batch (before its preprocessor)."""
        import torch

        batch: dict[str, Any] = {
            "observation.state": torch.from_numpy(np.asarray(obs.state, dtype=np.float32))[None],
            "task": [obs.instruction],
        }
        for camera, image in obs.images.items():
            pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255.0)
            batch[f"observation.images.{camera}"] = pixels[None]
        return batch

    def act(self, obs: Observation, temperature: float = 0.0) -> ActionChunk:
        import torch

        with torch.inference_mode():
            batch = self.preprocessor(self.to_batch(obs))
            chunk = self.policy.predict_action_chunk(batch)  # [1, K, A], normalised
            actions = self.postprocessor(chunk)
        actions = np.asarray(actions.detach().cpu().numpy(), dtype=np.float32).reshape(-1, self.action_dim)
        return ActionChunk(actions=actions[: self.chunk_size], policy_version=self.version)

    def reset(self) -> None:
        self.policy.reset()
