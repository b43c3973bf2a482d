"""The trainer rides out a broker outage: progress that cannot be published never fails a stage; a Redis lease
survives a blip shorter than its TTL and is lost after it; a stage whose lease is lost stops (not failed) and beat's
``flywheel.recover`` resumes the run, a bounded number of times."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_helpers import stage

from tests.conftest import need
from trainer.service import execute
from trainer.service.execute import run_stage, snapshot_step
from trainer.service.locks import Lease, LeaseLost, redis_lock
from trainer.service.pipeline import start_run
from trainer.service.progress import StageReporter, read_run
from trainer.service.schedule import recover_interrupted
from trainer.service.stage import CycleConfig


def test_progress_that_cannot_be_published_never_fails_a_stage(embedded, episodes, policy_dir) -> None:
    run_id = start_run(embedded, CycleConfig(policy=str(policy_dir)))

    def broker_down(meta: dict[str, Any]) -> None:
        raise ConnectionError("Error 111 connecting to localhost:6379. Connection refused.")

    report = StageReporter(embedded, run_id, "world_model", broker_down, every_s=0.0)
    for step in range(3):
        report(step, 3, loss=1.0 / (step + 1))  # no exception: the stage goes on
    assert stage(embedded, run_id, "world_model")["step"] == 2  # the run's own record still has it
    lost = Lease(True, "stage:x")
    lost.lost.set()
    with pytest.raises(LeaseLost, match="resumes from its checkpoints"):
        StageReporter(embedded, run_id, "world_model", lease=lost)(3, 3)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Redis server of this test's own (it is paused and resumed), on a free port."""
    need(shutil.which("redis-server") is not None, "redis-server on the PATH (Debian package redis-server)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        with contextlib.suppress(redis.exceptions.ConnectionError):
            if client.ping():
                break
        time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0", proc
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait()


def test_a_redis_lease_rides_out_a_blip_and_is_lost_after_its_ttl(private_redis) -> None:
    url, server = private_redis
    with redis_lock(url, "stage:blip", ttl_s=3.0) as lease:
        assert lease.acquired
        server.send_signal(signal.SIGSTOP)  # the broker stops answering ...
        time.sleep(1.5)  # ... for half the lease
        server.send_signal(signal.SIGCONT)
        time.sleep(2.5)  # renewed since: still held
        assert not lease.lost.is_set()
        server.send_signal(signal.SIGSTOP)  # now for longer than the lease
        deadline = time.monotonic() + 10
        while not lease.lost.is_set() and time.monotonic() < deadline:
            time.sleep(0.1)
        server.send_signal(signal.SIGCONT)
        assert lease.lost.is_set()


def test_a_stage_that_lost_its_lease_stops_and_recover_resumes_it_a_bounded_number_of_times(
    embedded, episodes, policy_dir, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = embedded.model_copy(update={"max_recoveries": 1})
    run_id = start_run(settings, CycleConfig(policy=str(policy_dir)))
    snapshot_step(settings, run_id)

    @contextlib.contextmanager
    def lost_lease(*args: Any, **kwargs: Any) -> Iterator[Lease]:
        lease = Lease(True, "stage")
        lease.lost.set()  # as if the broker had been down for longer than the lease
        yield lease

    with monkeypatch.context() as m:
        m.setattr(execute, "service_lock", lost_lease)
        with pytest.raises(LeaseLost):
            run_stage(settings, run_id, "world_model")
    assert stage(settings, run_id, "world_model")["state"] == "interrupted"
    assert read_run(settings, run_id)["state"] == "running"  # not failed: it resumes from its checkpoints

    resumed: list[str] = []
    out = recover_interrupted(settings, resume=lambda rid, s: resumed.append(rid) or "celery-id")
    assert resumed == [run_id] and "resumed at world_model (recovery 1 of 1)" in out[run_id]
    out = recover_interrupted(settings, resume=lambda rid, s: resumed.append(rid) or "celery-id")
    assert resumed == [run_id]  # the bound: not resumed again
    assert out[run_id].startswith("failed: world_model was interrupted 2 times")
    record = read_run(settings, run_id)
    assert record["state"] == "failed" and f"flywheel train cycle --resume {run_id}" in record["reason"]
