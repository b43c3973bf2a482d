"""Checkpoints without pickle: weights in safetensors, everything else in JSON, written atomically.

A model directory holds ``model.safetensors``, ``config.json`` and ``manifest.json`` (sha256 of each file, kind,
training run, dataset, metrics: the same idea as the policy artifact). A training checkpoint adds
``optimizer.safetensors`` and ``train_state.json`` so a killed run resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from data_store.digest import sha256_file

MODEL_FILE, CONFIG_FILE, MANIFEST_FILE = "model.safetensors", "config.json", "manifest.json"
OPTIMIZER_FILE, TRAIN_STATE_FILE = "optimizer.safetensors", "train_state.json"


def write_model_dir(
    out: str | Path,
    module: nn.Module,
    config: dict[str, Any],
    *,
    kind: str,
    manifest: dict[str, Any] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    train_state: dict[str, Any] | None = None,
) -> Path:
    """Write the files into a temporary sibling, then move them in (see the comment at the swap)."""
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().contiguous() for k, v in module.state_dict().items()}, str(tmp / MODEL_FILE))
    (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    if optimizer is not None:
        tensors, groups = optimizer_state(optimizer)
        save_file(tensors, str(tmp / OPTIMIZER_FILE))
        (tmp / TRAIN_STATE_FILE).write_text(json.dumps({**(train_state or {}), "param_groups": groups}, indent=2))
    files = sorted(p.name for p in tmp.iterdir())
    (tmp / MANIFEST_FILE).write_text(
        json.dumps(
            {
                "kind": kind,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "files": {name: sha256_file(tmp / name) for name in files},
                **(manifest or {}),
            },
            indent=2,
        )
    )
    # Swap file by file, the manifest last: other entries of ``out`` (the training checkpoint folder) stay, and a
    # crash half-way leaves a manifest whose hashes do not match, which ``read_model_dir`` refuses.
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST_FILE).unlink(missing_ok=True)
    for name in (*files, MANIFEST_FILE):
        os.replace(tmp / name, out / name)
    for stale in (OPTIMIZER_FILE, TRAIN_STATE_FILE):
        if stale not in files:
            (out / stale).unlink(missing_ok=True)
    tmp.rmdir()
    return out


def finish_interrupted_write(out: str | Path) -> bool:
    """Complete a :func:`write_model_dir` that was killed during its swap; -> whether it did.

    The swap removes ``out``'s manifest, moves the new files in one by one, and moves the new manifest last, so
    a kill in between leaves ``out`` without a manifest and the new manifest (with the files not yet moved) in
    the ``.tmp`` sibling. When every file the new manifest lists is there, in one folder or the other, with its
    hash, the swap is finished here; otherwise nothing changes. (A kill while the ``.tmp`` folder is being
    written leaves ``out`` as it was.) Seen in CI: a worker SIGKILLed during a world-model checkpoint left a
    checkpoint the next worker could not resume from."""
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    if (out / MANIFEST_FILE).exists() or not (tmp / MANIFEST_FILE).exists():
        return False
    files = json.loads((tmp / MANIFEST_FILE).read_text()).get("files", {})
    for name, digest in files.items():
        src = tmp / name if (tmp / name).exists() else out / name
        if not src.exists() or sha256_file(src) != digest:
            return False
    out.mkdir(parents=True, exist_ok=True)
    for name in files:
        if (tmp / name).exists():
            os.replace(tmp / name, out / name)
    os.replace(tmp / MANIFEST_FILE, out / MANIFEST_FILE)
    shutil.rmtree(tmp, ignore_errors=True)
    return True


def read_model_dir(path: str | Path, kind: str) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """-> (weights, config, manifest); checks the kind and each file's sha256."""
    path = Path(path)
    if not (path / MANIFEST_FILE).exists():
        raise FileNotFoundError(f"{path}: no {MANIFEST_FILE} (not a {kind} directory)")
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    if manifest.get("kind") != kind:
        raise ValueError(f"{path}: holds a {manifest.get('kind')!r}, expected {kind!r}")
    for name, digest in manifest["files"].items():
        if sha256_file(path / name) != digest:
            raise ValueError(f"{path / name}: sha256 does not match the manifest (corrupt or edited)")
    return load_file(str(path / MODEL_FILE)), json.loads((path / CONFIG_FILE).read_text()), manifest


def optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """An optimizer's state as flat tensors + JSON-able param groups."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for pid, st in sd["state"].items():
        for name, value in st.items():
            t = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"{pid}.{name}"] = t.detach().clone().contiguous()
    return tensors, sd["param_groups"]


def load_optimizer(optimizer: torch.optim.Optimizer, path: str | Path) -> dict[str, Any]:
    """Restore ``optimizer`` from a training checkpoint; -> the train state (step, rng, ...)."""
    path = Path(path)
    state = json.loads((path / TRAIN_STATE_FILE).read_text())
    tensors = load_file(str(path / OPTIMIZER_FILE))
    per_param: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        pid, name = key.split(".", 1)
        per_param.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": per_param, "param_groups": state.pop("param_groups")})
    return state
