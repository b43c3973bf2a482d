"""Shared test helpers.

A test that needs something this machine lacks (Redis, PostgreSQL, Chromium, an optional library)
calls ``need(...)``: it skips with the reason locally, and fails with the reason in CI (``CI=true``),
so nothing is skipped silently where it should run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# typer draws a CLI error in a box as wide as the terminal: at 80 columns a message with a tmp path wraps where
# the path's length puts it (pytest-9 vs pytest-10), and a test that looks for the message failed on some runs
os.environ["TERMINAL_WIDTH"] = "400"  # typer reads it for its error box

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# tests/ros import rclpy, which lives in .venv-ros (scripts/setup_ros.sh); scripts/test.sh runs them there, after
# this suite. In an interpreter without rclpy they are left out of collection, and the header says so.
try:
    import importlib.util

    HAVE_RCLPY = importlib.util.find_spec("rclpy") is not None
except ValueError:
    HAVE_RCLPY = False
collect_ignore = [] if HAVE_RCLPY else ["ros"]


def pytest_report_header() -> str | None:
    if HAVE_RCLPY:
        return None
    return "tests/ros: not collected (no rclpy here); they run under .venv-ros/bin/python -m pytest tests/ros"


FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


def need(ok: bool, what: str, *, optional_in_ci: bool = False) -> None:
    """Skip (locally) or fail (in CI) unless ``ok``. ``optional_in_ci`` is for things CI never has
    (lerobot on Python 3.11, a GPU): those skip everywhere, with the install command in ``what``."""
    if ok:
        return
    if IN_CI and not optional_in_ci:
        pytest.fail(f"CI needs {what}", pytrace=False)
    pytest.skip(f"needs {what}")


@pytest.fixture
def store_dir(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "store"
    d.mkdir()
    yield d
