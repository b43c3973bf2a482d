"""The embedded SQLite broker's queues: declared once, safely, however many processes start at once."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from service_helpers import make_settings

from trainer.service.celery_app import ensure_dirs

DECLARE = "from trainer.service.celery_app import ensure_dirs; from trainer.service.settings import load_settings; "
DECLARE += "ensure_dirs(load_settings())"


def _queues(root: Path) -> list[str]:
    with sqlite3.connect(root / "celery" / "broker.sqlite") as db:
        return sorted(name for (name,) in db.execute("SELECT name FROM kombu_queue"))


def test_ensure_dirs_declares_both_queues_on_the_sqlite_broker(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    ensure_dirs(settings)
    ensure_dirs(settings)  # idempotent
    assert _queues(settings.root) == ["cpu", "gpu"]


def test_processes_starting_at_once_declare_without_a_unique_constraint_error(tmp_path: Path) -> None:
    """Six processes declare the queues on one fresh broker file at the same moment (a worker starting while a
    producer submits): each exits cleanly and the queue table holds each queue once."""
    settings = make_settings(tmp_path)
    env = {**os.environ, "FLYWHEEL_DATA_DIR": str(settings.root)}
    procs = [
        subprocess.Popen([sys.executable, "-c", DECLARE], env=env, stderr=subprocess.PIPE, text=True) for _ in range(6)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, "\n".join(errors)
    assert _queues(settings.root) == ["cpu", "gpu"]
