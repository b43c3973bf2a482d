"""The frozen instruction encoders: real all-MiniLM-L6-v2 from the installed package, and the test-only hash."""

from __future__ import annotations

import torch

from vla.language import HashEncoder, language_encoder


def test_minilm_embeds_384_d_unit_vectors_that_respect_meaning() -> None:
    enc = language_encoder("minilm")
    e = enc.embed(["close the drawer", "shut the drawer", "press the red button", "close the drawer"])
    assert e.shape == (4, 384) and e.dtype == torch.float32
    torch.testing.assert_close(e.norm(dim=1), torch.ones(4), atol=1e-4, rtol=0)
    torch.testing.assert_close(e[0], e[3])
    assert float(e[0] @ e[1]) > float(e[0] @ e[2])  # paraphrase closer than another task
    assert "shut the drawer" in enc._cache  # cached: instructions repeat every chunk


def test_hash_encoder_is_deterministic_and_word_based() -> None:
    a, b = HashEncoder(), HashEncoder()
    x = a.embed(["open the window", "close the window", "press button"])
    y = b.embed(["open the window", "close the window", "press button"])
    torch.testing.assert_close(x, y)
    assert float(x[0] @ x[1]) > float(x[0] @ x[2])
