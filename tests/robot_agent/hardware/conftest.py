"""A fake arm driver process on its own DDS domain, for tests that speak ROS 2 topics to it."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import need

ROOT = Path(__file__).resolve().parents[3]
# One ROS domain per driver, unique across concurrent test runs on this machine (the pid picks a band).
_DOMAINS = itertools.count(20 + (os.getpid() % 10) * 20)


# Test machines are shared and loaded: a driver process may be starved for a while. Joint states older
# than this are a fault (the default, 1 s, is for a real arm).
LENIENT = {"state_timeout_s": 2.0}


def have_dds() -> bool:
    try:
        import cyclonedds.domain  # noqa: F401
        import ros2_pyterfaces  # noqa: F401
    except ImportError:
        return False
    return True


class DriverProcess:
    def __init__(self, domain_id: int, *args: str) -> None:
        self.domain_id = domain_id
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "robot_agent.transports.fake_driver", "--domain-id", str(domain_id), *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if '"ready"' not in line:
            self.proc.kill()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"fake driver did not start: {line!r} {err[-2000:]}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_driver(*args: str) -> DriverProcess:
    need(have_dds(), "cyclonedds and ros2-pyterfaces (pip install 'vla-flywheel[ros]')")
    return DriverProcess(next(_DOMAINS), *args)


@pytest.fixture(scope="module")
def driver() -> Iterator[DriverProcess]:
    """One driver for a module's tests (each test homes the arm and releases any e-stop it latched)."""
    d = start_driver()
    yield d
    d.stop()
