"""One thread policy for CPU-heavy work (SFT, the world and reward models, GRPO, evaluation, benchmarks).

Torch's intra-op threads, BLAS and OpenMP each start a pool as wide as the machine by default; on a shared 2-core
machine two such pools spin against each other and against every other process (a training step measured ~50×
slower with two contending threads than with one). ``bound_threads`` sets all of them at once, never wider than the
cores this process is given, and, for the trainer, lowers its scheduling priority so that a robot agent on the same
machine keeps its deadlines. Every entry point that trains calls it: the CLI commands (``--threads``), the Celery
worker, the benches' unit processes and the benchmarks.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# The variables the math libraries read when they start (child processes inherit them).
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
BACKGROUND_NICE = 10  # the trainer's niceness above the robot's (Linux: 0 is normal, 19 the lowest)


def cores_given() -> int:
    """The cores this process may run on: ``FLYWHEEL_CORES`` when set, else its CPU affinity (a container's or a
    ``taskset``'s share), else the machine's count."""
    env = os.environ.get("FLYWHEEL_CORES", "")
    if env.strip().isdigit() and int(env) > 0:
        return int(env)
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def thread_budget(requested: int = 0) -> int:
    """Threads for this process: ``requested`` (at most the cores given), or with 0, one when the machine is already
    busier than those cores, else all of them."""
    cores = cores_given()
    if requested > 0:
        return min(requested, cores)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return 1 if load >= cores else cores


def bound_threads(requested: int = 0, *, background: bool = False, import_torch: bool = True) -> int:
    """Set torch, BLAS and OpenMP to ``thread_budget(requested)`` threads (and the variables children inherit);
    ``background``: run below normal priority (a trainer beside a robot); ``import_torch=False``: set torch's threads
    only if it is loaded already (a robot on remote inference never loads it). Returns the thread count."""
    n = thread_budget(requested)
    for var in THREAD_VARS:
        os.environ[var] = str(n)
    torch: Any = sys.modules.get("torch")
    if torch is None and import_torch:
        try:
            import torch
        except ImportError:  # a robot without torch: only the variables matter
            torch = None
    if torch is not None:
        torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)  # BLAS pools numpy has already started
    except ImportError:
        pass
    if background:
        lower_priority()
    return n


@contextmanager
def threads_bounded(requested: int = 0, *, import_torch: bool = True) -> Iterator[int]:
    """``bound_threads`` for the length of a block, then the threads and variables as they were (a robot session in
    a process that trains afterwards, as the demo does, must not leave it on one thread)."""
    saved = {var: os.environ.get(var) for var in THREAD_VARS}
    torch_before = sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None
    try:
        yield bound_threads(requested, import_torch=import_torch)
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
        if torch_before is not None:
            sys.modules["torch"].set_num_threads(torch_before)


def lower_priority(nice: int = BACKGROUND_NICE) -> int:
    """Raise this process's niceness to at least ``nice`` (never lowers it; no privilege needed). Returns it."""
    if not hasattr(os, "getpriority"):
        return 0
    now = os.getpriority(os.PRIO_PROCESS, 0)
    if now < nice:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
        except OSError:
            return now
    return max(now, nice)
