"""``vla.threads``: one thread policy for torch, BLAS and OpenMP, bounded by the cores given; training below the
robot's priority."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from vla.threads import THREAD_VARS, bound_threads, cores_given, thread_budget


@pytest.fixture
def restore_threads(monkeypatch: pytest.MonkeyPatch) -> object:
    before = torch.get_num_threads()
    for var in THREAD_VARS:
        monkeypatch.setenv(var, os.environ.get(var, ""))  # restored by monkeypatch afterwards
    yield
    torch.set_num_threads(before)


def test_never_more_threads_than_the_cores_given(restore_threads: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_CORES", "1")
    assert cores_given() == 1 and thread_budget(8) == 1 and thread_budget(0) == 1
    assert bound_threads(8) == 1
    assert torch.get_num_threads() == 1 and all(os.environ[v] == "1" for v in THREAD_VARS)
    monkeypatch.delenv("FLYWHEEL_CORES")
    assert cores_given() == len(os.sched_getaffinity(0))
    assert thread_budget(1) == 1


def test_a_trainer_runs_below_the_robots_priority() -> None:
    code = (
        "import os; from vla.threads import bound_threads; bound_threads(1, background=True); "
        "print(os.getpriority(os.PRIO_PROCESS, 0), os.environ['OMP_NUM_THREADS'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    nice, omp = out.stdout.split()
    assert int(nice) >= 10 and omp == "1"


def test_a_robot_bounds_a_loaded_torch_but_never_loads_it() -> None:
    code = (
        "import sys; from vla.threads import bound_threads; bound_threads(1, import_torch=False); "
        "print('torch' in sys.modules); import torch; bound_threads(1, import_torch=False); "
        "print(torch.get_num_threads())"
    )
    env = {**os.environ, "FLYWHEEL_CORES": "2"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True, env=env)
    assert out.stdout.split() == ["False", "1"]


def test_threads_are_bounded_for_a_block_and_restored_after(restore_threads: object) -> None:
    from vla.threads import threads_bounded

    torch.set_num_threads(2)
    os.environ.pop("OMP_NUM_THREADS", None)
    with threads_bounded(1) as n:
        assert n == 1 and torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
    assert torch.get_num_threads() == 2 and "OMP_NUM_THREADS" not in os.environ
