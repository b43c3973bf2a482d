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


# tests/ros import rclpy, which lives in .venv-ros (scripts/setup_ros.sh), and tests/against_lerobot import lerobot,
# which lives in .venv-lerobot (scripts/setup_lerobot.sh); scripts/test.sh runs each under its venv after this suite.
# In an interpreter without them they are left out of collection, and the header says so.
def _have(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:
        return False


_OWN_VENV = {"ros": ("rclpy", ".venv-ros"), "against_lerobot": ("lerobot", ".venv-lerobot")}
collect_ignore = [folder for folder, (module, _) in _OWN_VENV.items() if not _have(module)]


def pytest_report_header() -> list[str]:
    return [
        f"tests/{folder}: not collected (no {_OWN_VENV[folder][0]} here); they run under "
        f"{_OWN_VENV[folder][1]}/bin/python -m pytest tests/{folder}"
        for folder in collect_ignore
    ]


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
