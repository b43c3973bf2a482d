"""The artifact store: a folder of policy artifacts, one directory per content digest.

A policy artifact (docs/architecture.md, "Contracts") is a directory with ``model.safetensors``,
``config.json``, ``norm_stats.json`` and ``manifest.json``; the manifest holds the sha256 of every
other file. The digest of an artifact is the sha256 of its ``manifest.json`` bytes, so it covers
every file (a Merkle root one level deep) and the same artifact always lands in the same place.

Layout: ``<root>/<sha256>/`` (the files) and ``<root>/<sha256>.tar.gz`` (made on first download).
Tarballs are unpacked with ``safe_extract``: regular files and folders only, no absolute paths, no
``..``, no links, bounded size.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
import threading
from pathlib import Path
from typing import Any, BinaryIO

from data_store.digest import ArtifactError, sha256_file

MANIFEST = "manifest.json"
MAX_ARTIFACT_BYTES = 4 << 30


def artifact_digest(artifact_dir: Path) -> str:
    """sha256 of ``manifest.json``: the artifact's identity."""
    manifest = Path(artifact_dir) / MANIFEST
    if not manifest.is_file():
        raise ArtifactError(f"{artifact_dir}: no {MANIFEST} (not a policy artifact)")
    return sha256_file(manifest)


def read_manifest(artifact_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((Path(artifact_dir) / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ArtifactError(f"{artifact_dir}: unreadable {MANIFEST}: {e}") from e
    if not isinstance(data, dict):
        raise ArtifactError(f"{artifact_dir}: {MANIFEST} is not a JSON object")
    return data


def safe_extract(tar_bytes: BinaryIO, dest: Path, *, max_bytes: int = MAX_ARTIFACT_BYTES) -> Path:
    """Unpack a (gzipped) tarball into ``dest`` and return the folder that holds ``manifest.json``
    (``dest`` itself or its single top-level folder)."""
    dest.mkdir(parents=True, exist_ok=True)
    total = 0
    try:
        with tarfile.open(fileobj=tar_bytes, mode="r:*") as tar:
            members = tar.getmembers()
            for m in members:
                name = Path(m.name)
                if name.is_absolute() or ".." in name.parts:
                    raise ArtifactError(f"tarball member {m.name!r} escapes the artifact folder")
                if not (m.isfile() or m.isdir()):
                    raise ArtifactError(f"tarball member {m.name!r} is not a regular file or folder")
                total += m.size
                if total > max_bytes:
                    raise ArtifactError(f"tarball unpacks to more than {max_bytes} bytes")
            tar.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError) as e:
        raise ArtifactError(f"not a readable tarball: {e}") from e
    if (dest / MANIFEST).is_file():
        return dest
    subdirs = [p for p in dest.iterdir() if p.is_dir()]
    if len(subdirs) == 1 and (subdirs[0] / MANIFEST).is_file():
        return subdirs[0]
    raise ArtifactError(f"the tarball has no {MANIFEST} at its top level or in a single folder")


def pack_tarball(artifact_dir: Path) -> bytes:
    """A gzipped tarball of the artifact's top-level files (what ``safe_extract`` and the robot read)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        for path in sorted(Path(artifact_dir).iterdir()):  # an artifact is flat: its files only
            if path.is_file() and not path.is_symlink():
                tar.add(path, arcname=path.name, recursive=False)
    return buf.getvalue()


class ArtifactStore:
    """A folder of artifacts keyed by digest. Adding the same artifact twice keeps one copy."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.root / digest

    def add_dir(self, src: Path | str) -> tuple[str, Path]:
        """Copy an artifact folder into the store; returns (digest, stored path)."""
        src = Path(src)
        if not src.is_dir():
            raise ArtifactError(f"{src}: not a folder")
        digest = artifact_digest(src)
        dest = self.path(digest)
        if not dest.exists():
            tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self.root))
            try:
                shutil.copytree(src, tmp, dirs_exist_ok=True, symlinks=False)
                try:
                    tmp.rename(dest)  # atomic: a reader never sees half an artifact
                except OSError:
                    if not dest.exists():
                        raise
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return digest, dest

    def tarball(self, digest: str) -> Path:
        """The artifact as a .tar.gz file (made once, then served from disk)."""
        out = self.root / f"{digest}.tar.gz"
        if not out.exists():
            src = self.path(digest)
            if not src.is_dir():
                raise ArtifactError(f"artifact {digest} is not in the store at {self.root}")
            tmp = out.with_name(f"{out.name}.{os.getpid()}-{threading.get_ident()}.part")
            tmp.write_bytes(pack_tarball(src))
            tmp.replace(out)
        return out
