"""JSON lines for benchmarks: one row per figure, with the machine it was measured on and its load (stdlib only).

Every benchmark in the project reports through this module (the robot's, the server's and the trainer's), so a figure
always names the host, the CPU, the cores and the 1-minute load average it was taken at."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    """What the figure was measured on: host, CPU model, cores, and the 1-minute load (a busy machine
    inflates every wall time)."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"host": platform.node(), "cpu": cpu, "cores": os.cpu_count(), "load_1min": load}


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, MiB (Linux reports KiB)."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def emit(name: str, figure: str, value: float, unit: str, config: dict[str, Any], **extra: Any) -> None:
    """One JSON line on stdout (plain print, not rich, so it stays machine-readable)."""
    row = {"name": name, "figure": figure, "value": value, "unit": unit, "machine": machine(), "config": config}
    print(json.dumps({**row, **extra}), flush=True)
