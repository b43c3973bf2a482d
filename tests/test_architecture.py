"""The import rules of docs/architecture.md, checked on the source: arrows point one way.

Every ``import`` of a project package, at module level or inside a function, counts. A new arrow that the table
does not allow fails here with the file and the line; the one arrow still allowed against the rule is listed in
``KNOWN`` with the reason, so that removing it is a deliberate change of this file."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# package -> the project packages it may import (docs/architecture.md, "Import rules")
ALLOWED: dict[str, set[str]] = {
    "data_store": set(),
    "vla": {"data_store"},
    "sim": {"data_store"},
    "robot_agent": {"data_store", "vla", "sim"},
    "trainer": {"data_store", "vla", "sim", "robot_agent"},
    "serving": {"data_store", "vla"},
    "flywheel": {"data_store", "vla", "sim", "robot_agent", "trainer", "serving"},
}
KNOWN: set[tuple[str, str]] = set()  # (file, package) allowed against the rules, each with its reason


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def test_every_import_follows_the_rules() -> None:
    broken, used = [], set()
    for package, allowed in ALLOWED.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for line, top in imports_of(path):
                if top not in ALLOWED or top == package or top in allowed:
                    continue
                if (rel, top) in KNOWN:
                    used.add((rel, top))
                    continue
                broken.append(f"{rel}:{line} imports {top} ({package} may import {sorted(allowed) or 'no package'})")
    assert not broken, "\n".join(broken)
    assert used == KNOWN, f"no longer needed, take them out of KNOWN: {sorted(KNOWN - used)}"


def test_the_ros_node_imports_only_the_robot_agent() -> None:
    tops = {top for path in (ROOT / "ros_ws").rglob("*.py") for _, top in imports_of(path) if top in ALLOWED}
    assert tops <= {"robot_agent", "data_store", "vla", "sim"}, tops


def test_a_robot_and_the_server_load_without_torch_or_each_other() -> None:
    """A robot on remote inference runs without torch; the server needs neither the robot's code nor the trainer's
    (the runs router's hand-over to the trainer happens only when a run is posted)."""
    code = (
        "import importlib, pkgutil, sys, robot_agent\n"
        "for m in pkgutil.walk_packages(robot_agent.__path__, 'robot_agent.'):\n"
        "    importlib.import_module(m.name)\n"
        "assert 'torch' not in sys.modules, 'robot_agent imported torch'\n"
        "for m in [m for m in sys.modules if m.split('.')[0] in ('robot_agent', 'vla', 'sim')]:\n"
        "    del sys.modules[m]\n"
        "import serving.app, serving.cli\n"
        "bad = sorted({m.split('.')[0] for m in sys.modules} & {'robot_agent', 'trainer', 'torch'})\n"
        "assert not bad, f'the server imported {bad}'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
