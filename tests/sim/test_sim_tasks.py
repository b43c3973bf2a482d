"""The task registry: short names, several phrasings, and any Meta-World v3 task."""

from __future__ import annotations

import pytest

from sim.tasks import TASKS, metaworld_env_names, resolve_task


def test_registry_names_at_least_six_real_tasks_with_several_phrasings() -> None:
    assert len(TASKS) >= 6
    known = set(metaworld_env_names())
    for name, info in TASKS.items():
        assert info.name == name
        assert info.env_name in known, info.env_name
        assert len(set(info.instructions)) >= 2, name
        assert info.max_steps > 0


def test_short_and_env_names_resolve_to_the_same_task() -> None:
    assert resolve_task("push") == resolve_task("push-v3") == TASKS["push"]
    assert resolve_task(" Drawer-Close ").env_name == "drawer-close-v3"


def test_any_metaworld_task_resolves_with_an_instruction_from_its_name() -> None:
    assert "faucet-close" not in TASKS
    info = resolve_task("faucet-close-v3")
    assert info.env_name == "faucet-close-v3"
    assert info.name == "faucet-close"
    assert "faucet close" in info.instruction


def test_instruction_for_cycles_through_the_phrasings() -> None:
    info = TASKS["drawer-close"]
    n = len(info.instructions)
    assert [info.instruction_for(i) for i in range(n)] == list(info.instructions)
    assert info.instruction_for(n) == info.instructions[0]


def test_unknown_task_lists_the_known_ones() -> None:
    with pytest.raises(ValueError) as e:
        resolve_task("make-coffee")
    message = str(e.value)
    assert "make-coffee" in message
    assert "drawer-close" in message and "faucet-close" in message
