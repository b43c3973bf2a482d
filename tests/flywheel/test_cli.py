"""The composed ``flywheel`` command answers ``--help`` at every level."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from flywheel.cli import app


def _groups() -> list[str]:
    return [g.name for g in app.registered_groups if g.name]


@pytest.mark.parametrize("group", _groups())
def test_every_group_has_help(group: str) -> None:
    result = CliRunner().invoke(app, [group, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_console_script_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "flywheel.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for group in ("robot", "data", "train", "bench", "serve", "demo"):
        assert group in out.stdout
