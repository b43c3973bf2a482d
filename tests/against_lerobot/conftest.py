"""Checks against lerobot itself (0.4.4, the last release for Python 3.11): our export loaded by its
``LeRobotDataset``, a dataset it records imported by us, its SO-101 robot class behind our backend, and one of
its policies run by our robot agent.

These tests run under ``.venv-lerobot/bin/python`` (``bash scripts/setup_lerobot.sh``; ``scripts/test.sh`` does
both): lerobot needs torchvision, which cannot sit beside the project's torch.
"""

from __future__ import annotations

import importlib.util

import pytest

if importlib.util.find_spec("lerobot") is None:  # pragma: no cover - the run was started with the wrong interpreter
    raise pytest.UsageError(
        "tests/against_lerobot need lerobot: run them with .venv-lerobot/bin/python -m pytest tests/against_lerobot "
        "(bash scripts/setup_lerobot.sh sets it up; bash scripts/test.sh runs them)"
    )
