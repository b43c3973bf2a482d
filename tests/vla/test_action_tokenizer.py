"""ActionTokenizer: 256 uniform bins between per-dim q01/q99, clipping outside, JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vla.tokenizer import N_BINS, ActionTokenizer


def test_fit_uses_quantiles_and_256_bins() -> None:
    rng = np.random.default_rng(0)
    actions = rng.normal(size=(10_000, 3)) * np.array([1.0, 0.1, 2.0])
    tok = ActionTokenizer.fit(actions)
    assert tok.n_bins == N_BINS == 256
    np.testing.assert_allclose(tok.low, np.quantile(actions, 0.01, axis=0))
    np.testing.assert_allclose(tok.high, np.quantile(actions, 0.99, axis=0))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-0.99, 0.99), min_size=4, max_size=4))
def test_round_trip_within_half_a_bin(values: list[float]) -> None:
    tok = ActionTokenizer(low=(-1.0,) * 4, high=(1.0,) * 4)
    a = np.asarray(values, dtype=np.float32)
    tokens = tok.encode(a)
    assert tokens.dtype == np.int64 and tokens.shape == (4,)
    back = tok.decode(tokens)
    assert back.dtype == np.float32
    assert np.all(np.abs(back - a) <= tok.bin_width() / 2 + 1e-6)
    np.testing.assert_array_equal(tok.encode(back), tokens)  # bin centres map to their own bin


def test_values_outside_the_range_clip_to_the_end_bins() -> None:
    tok = ActionTokenizer(low=(0.0, -2.0), high=(1.0, 2.0))
    tokens = tok.encode(np.array([[-5.0, 9.0], [0.5, 0.0]]))
    assert tokens.tolist() == [[0, 255], [128, 128]]


def test_constant_dimension_does_not_divide_by_zero() -> None:
    tok = ActionTokenizer.fit(np.ones((50, 2)))
    back = tok.decode(tok.encode(np.ones((3, 2))))
    np.testing.assert_allclose(back, 1.0, atol=1e-5)


def test_json_round_trip_and_bad_tokens() -> None:
    tok = ActionTokenizer(low=(-0.3, -1.0), high=(0.7, 1.0))
    again = ActionTokenizer.from_json(json.loads(json.dumps(tok.to_json())))
    assert again == tok
    with pytest.raises(ValueError, match="token ids"):
        tok.decode(np.array([0, 256]))
    with pytest.raises(ValueError, match="last dim"):
        tok.encode(np.zeros(3))
