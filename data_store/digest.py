"""The bytes of a policy artifact: the sha256 of a file, and the one error every artifact check raises.

Light on purpose (hashlib only): the robot's checks (``vla.manifest``), the registry's artifact store
(``data_store.registry.artifacts``) and the trainer's checkpoints all hash files with ``sha256_file``, and an
artifact that is malformed, altered or unsafe is an ``ArtifactError`` wherever it is found.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


class ArtifactError(ValueError):
    """An artifact is missing a file, was altered, is unsafe, or its parts disagree. The message names which."""


def sha256_file(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
