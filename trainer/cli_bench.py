"""Commands of one trainer family. `register` adds them to `flywheel train` / `flywheel bench`."""

from __future__ import annotations

import typer


def register(train: typer.Typer, bench: typer.Typer) -> None:
    """Add this family's commands."""
