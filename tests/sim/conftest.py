"""Shared simulated arms: building one costs ~1 s (MT1 draws its task variations), so tests share them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sim.env import MetaWorldArm


@pytest.fixture(scope="session")
def drawer_arm() -> Iterator[MetaWorldArm]:
    with MetaWorldArm("drawer-close") as arm:
        yield arm


@pytest.fixture(scope="session")
def push_arm() -> Iterator[MetaWorldArm]:
    with MetaWorldArm("push") as arm:
        yield arm
