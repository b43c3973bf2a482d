"""Fixtures for the episode-store tests."""

from __future__ import annotations

import pytest
from episode_helpers import small_spec

from data_store.schema import RobotSpec


@pytest.fixture
def spec() -> RobotSpec:
    return small_spec()
