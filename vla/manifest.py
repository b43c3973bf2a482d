"""The policy artifact's manifest: what the robot checks before it swaps a policy in. No torch here.

An artifact is a directory (or a ``.tar.gz`` of one)::

    model.safetensors   weights (no pickle)
    config.json         {"format", "model": VLAConfig, "robot_spec": RobotSpec}
    norm_stats.json     proprio mean/std, action bins (ActionTokenizer), action bounds
    manifest.json       {"format", "version", "files": {name: {"sha256", "bytes"}}, "parent_version",
                         "training_run", "dataset_snapshot", "metrics", "robot_spec", "created_at"}

The version id is derived from the content: ``vla-`` + the first 16 hex digits of the sha256 over the
payload files' hashes, so the same weights, config and statistics always get the same version.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from pathlib import Path
from typing import Any

from data_store.digest import ArtifactError, sha256_file

FORMAT = "vla-flywheel/policy-artifact/1"
PAYLOAD = ("model.safetensors", "config.json", "norm_stats.json")
MANIFEST = "manifest.json"


def version_id(file_hashes: dict[str, str]) -> str:
    """Content-derived version: ``vla-`` + 16 hex digits of sha256 over the sorted ``name:sha256`` lines."""
    text = "\n".join(f"{name}:{file_hashes[name]}" for name in sorted(file_hashes))
    return "vla-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def write_manifest(
    directory: Path,
    *,
    parent_version: str | None,
    training_run: str | None,
    dataset_snapshot: str | None,
    metrics: dict[str, Any] | None,
    robot_spec: dict[str, Any] | None,
    created_at: str,
) -> dict[str, Any]:
    """Hash the payload files in ``directory`` and write ``manifest.json``; returns the manifest."""
    files: dict[str, dict[str, Any]] = {}
    for name in PAYLOAD:
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"{name}: missing in {directory}")
        files[name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    manifest = {
        "format": FORMAT,
        "version": version_id({n: f["sha256"] for n, f in files.items()}),
        "files": files,
        "parent_version": parent_version,
        "training_run": training_run,
        "dataset_snapshot": dataset_snapshot,
        "metrics": metrics or {},
        "robot_spec": robot_spec,
        "created_at": created_at,
    }
    _write_json(directory / MANIFEST, manifest)
    return manifest


def read_manifest(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{MANIFEST}: missing in {directory} (not a policy artifact)")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{MANIFEST}: not valid JSON ({e})") from None
    found = manifest.get("format") if isinstance(manifest, dict) else None
    if found != FORMAT:
        raise ArtifactError(f"{MANIFEST}: format is {found!r}, expected {FORMAT!r}")
    return manifest


def verify_artifact(directory: str | Path) -> dict[str, Any]:
    """Check every payload file against the manifest (presence, size, sha256) and the version id.

    Returns the manifest. Raises ``ArtifactError`` naming the first file that fails. Loads no weights:
    the robot runs this before it downloads torch-side state into memory.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    listed = manifest.get("files", {})
    hashes = {}
    for name in PAYLOAD:
        if name not in listed:
            raise ArtifactError(f"{MANIFEST}: does not list {name}")
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"{name}: missing in {directory}")
        if path.stat().st_size != listed[name].get("bytes"):
            raise ArtifactError(
                f"{name}: size {path.stat().st_size} bytes, manifest says {listed[name].get('bytes')} (file altered)"
            )
        digest = sha256_file(path)
        if digest != listed[name].get("sha256"):
            expected = str(listed[name].get("sha256"))[:12]
            raise ArtifactError(
                f"{name}: sha256 {digest[:12]}… does not match the manifest's {expected}… (file altered)"
            )
        hashes[name] = digest
    if version_id(hashes) != manifest.get("version"):
        raise ArtifactError(
            f"{MANIFEST}: version {manifest.get('version')!r} does not match the content ({version_id(hashes)})"
        )
    return manifest


def pack_artifact(directory: str | Path, tarball: str | Path) -> Path:
    """Verify ``directory`` and write it as a flat ``.tar.gz`` (manifest + payload files only)."""
    directory, tarball = Path(directory), Path(tarball)
    verify_artifact(directory)
    tmp = tarball.with_name(tarball.name + ".partial")
    with tarfile.open(tmp, "w:gz") as tar:
        for name in (MANIFEST, *PAYLOAD):
            tar.add(directory / name, arcname=name, recursive=False)
    os.replace(tmp, tarball)
    return tarball


def unpack_artifact(tarball: str | Path, directory: str | Path) -> dict[str, Any]:
    """Safely extract an artifact tarball into ``directory`` and verify it; returns the manifest.

    Only regular files named like the artifact's files are accepted: no paths, links, devices or
    extra members (a tarball is untrusted input).
    """
    directory = Path(directory)
    allowed = {MANIFEST, *PAYLOAD}
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            members = tar.getmembers()
            for m in members:
                if m.name not in allowed or not m.isfile():
                    raise ArtifactError(
                        f"{tarball}: unexpected member {m.name!r} (only {sorted(allowed)} as plain files)"
                    )
            directory.mkdir(parents=True, exist_ok=True)
            tar.extractall(directory, members=members, filter="data")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ArtifactError(f"{tarball}: not a readable .tar.gz ({e})") from None
    return verify_artifact(directory)


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
