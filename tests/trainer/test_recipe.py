"""The recipe: one typed configuration with named presets, overrides checked by name."""

from __future__ import annotations

import json

import pytest

from trainer.recipe import DEPLOY_TEMPERATURE, RECIPES, Recipe, recipe, with_overrides


def test_every_preset_round_trips_through_json() -> None:
    for r in RECIPES.values():
        assert Recipe.from_json(json.loads(json.dumps(r.to_json()))) == r


def test_overrides_change_fields_and_grpo_settings() -> None:
    r = recipe("default", iterations=3, kir_share=0.5, grpo={"lr": 1e-5, "temperature": 1.0}, seed=7)
    assert (r.iterations, r.kir_share, r.seed) == (3, 0.5, 7)
    assert r.grpo.lr == 1e-5 and r.grpo.temperature == 1.0
    assert r.grpo.group_size == RECIPES["default"].grpo.group_size  # the rest of GRPO's settings are kept
    assert RECIPES["default"].iterations != 3  # the preset itself is untouched


def test_the_robot_is_judged_at_temperature_zero_unless_told_otherwise() -> None:
    assert DEPLOY_TEMPERATURE == 0.0
    assert all(r.deploy_temperature == 0.0 for r in RECIPES.values())
    assert recipe("default", deploy_temperature=0.5).deploy_temperature == 0.5


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"iteration": 3}, "unknown recipe setting"),
        ({"grpo": {"learning_rate": 1e-3}}, "unknown GRPO setting"),
        ({"deploy_temperature": -1.0}, "deploy_temperature"),
        ({"kir_share": 2.0}, "kir_share"),
        ({"judge_share": 1.0}, "judge_share"),
    ],
)
def test_a_bad_setting_is_named(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        with_overrides(RECIPES["default"], overrides)


def test_an_unknown_preset_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="default"):
        recipe("nightly-ish")
