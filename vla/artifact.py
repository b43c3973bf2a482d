"""Save and load a ``VLAPolicy`` as a verified artifact directory (format in ``vla.manifest``).

``save_artifact`` writes into a temporary sibling directory and renames it into place, so a crash
never leaves a half-written artifact. ``load_artifact`` verifies the manifest first (refusing an
altered file, naming it), then checks that every tensor in ``model.safetensors`` matches the model
that ``config.json`` describes (refusing a mismatch, naming the tensor). No pickle anywhere.
torch is imported inside the functions: ``verify_artifact`` stays importable on a robot without it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data_store.schema import RobotSpec
from vla.manifest import (
    MANIFEST,
    ArtifactError,
    pack_artifact,
    read_manifest,
    unpack_artifact,
    verify_artifact,
    write_manifest,
)

if TYPE_CHECKING:
    from vla.model import VLAPolicy

__all__ = [
    "ArtifactError",
    "load_artifact",
    "pack_artifact",
    "read_manifest",
    "save_artifact",
    "unpack_artifact",
    "verify_artifact",
]
CONFIG_FORMAT = "vla-flywheel/vla-policy/1"


def save_artifact(
    policy: VLAPolicy,
    directory: str | Path,
    *,
    parent_version: str | None = None,
    training_run: str | None = None,
    dataset_snapshot: str | None = None,
    metrics: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> str:
    """Write ``policy`` to ``directory``; returns the content-derived version id (also set on ``policy``)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    if (directory / MANIFEST).exists() and not overwrite:
        raise ArtifactError(f"{directory}: an artifact is already there (pass overwrite=True to replace it)")
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.with_name(f".{directory.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in policy.state_dict().items()}
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        spec_json = policy.spec.to_json() if policy.spec is not None else None
        _write_json(
            tmp / "config.json", {"format": CONFIG_FORMAT, "model": policy.config.to_json(), "robot_spec": spec_json}
        )
        _write_json(tmp / "norm_stats.json", policy.norm_stats.to_json())
        manifest = write_manifest(
            tmp,
            parent_version=parent_version,
            training_run=training_run,
            dataset_snapshot=dataset_snapshot,
            metrics=metrics,
            robot_spec=spec_json,
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )
        if directory.exists():
            shutil.rmtree(directory)
        tmp.rename(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    policy.version = manifest["version"]
    return str(manifest["version"])


def load_artifact(directory: str | Path, *, device: str = "cpu") -> VLAPolicy:
    """Verify and load an artifact directory into a ``VLAPolicy`` in eval mode, ``.version`` set."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from vla.model import VLAConfig, VLAPolicy
    from vla.norm_stats import NormStats

    directory = Path(directory)
    manifest = verify_artifact(directory)
    config_json = _read_json(directory / "config.json")
    if config_json.get("format") != CONFIG_FORMAT:
        raise ArtifactError(f"config.json: format {config_json.get('format')!r}, expected {CONFIG_FORMAT!r}")
    try:
        config = VLAConfig.from_json(config_json["model"])
        spec = RobotSpec.from_json(config_json["robot_spec"]) if config_json.get("robot_spec") else None
    except (KeyError, TypeError, ValueError) as e:
        raise ArtifactError(f"config.json: {e}") from None
    try:
        norm_stats = NormStats.from_json(_read_json(directory / "norm_stats.json"))
    except (KeyError, TypeError, ValueError) as e:
        raise ArtifactError(f"norm_stats.json: {e}") from None
    try:
        policy = VLAPolicy(config, norm_stats, spec, load_pretrained_vision=False)
    except ValueError as e:
        raise ArtifactError(f"config.json and norm_stats.json disagree: {e}") from None
    try:
        tensors = load_file(str(directory / "model.safetensors"), device=device)
    except (SafetensorError, OSError) as e:
        raise ArtifactError(f"model.safetensors: unreadable ({e})") from None
    _check_tensors(policy.state_dict(), tensors)
    policy.load_state_dict(tensors, strict=True)
    policy.to(device).eval()
    policy.version = str(manifest["version"])
    return policy


def _check_tensors(expected: dict[str, Any], found: dict[str, Any]) -> None:
    """Name the first tensor where ``model.safetensors`` and the model built from ``config.json`` disagree."""
    for name, tensor in expected.items():
        if name not in found:
            raise ArtifactError(
                f"model.safetensors: tensor {name!r} {list(tensor.shape)} that config.json implies is missing"
            )
        if tuple(found[name].shape) != tuple(tensor.shape):
            raise ArtifactError(
                f"model.safetensors: tensor {name!r} has shape {list(found[name].shape)}, "
                f"config.json implies {list(tensor.shape)}"
            )
        if found[name].dtype != tensor.dtype:
            raise ArtifactError(f"model.safetensors: tensor {name!r} is {found[name].dtype}, expected {tensor.dtype}")
    extra = sorted(set(found) - set(expected))
    if extra:
        raise ArtifactError(f"model.safetensors: tensor {extra[0]!r} is not part of the model config.json describes")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{path.name}: not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise ArtifactError(f"{path.name}: expected a JSON object")
    return obj


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
