"""The nightly trigger: two concurrent triggers (real processes) start one cycle, on the file lock and on
Redis; the threshold counts episodes since the last cycle; ``flywheel beat`` runs the schedule."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from service_helpers import REPO, Worker, record_episodes, service_env, wait_for

from trainer.service.celery_app import create_app
from trainer.service.locks import service_lock
from trainer.service.pipeline import start_run
from trainer.service.progress import list_runs
from trainer.service.schedule import NIGHTLY_LOCK_TTL_S, maybe_start_cycle
from trainer.service.settings import ServiceSettings
from trainer.service.stage import CycleConfig

TRIGGER = """
import sys, time
import data_store.episodes, trainer.service.tasks  # imported before the barrier, so both race on the lock alone
from trainer.service.schedule import maybe_start_cycle
from trainer.service.settings import load_settings
settings = load_settings()
time.sleep(max(0.0, float(sys.argv[1]) - time.time()))  # both processes reach the trigger together
print("RESULT", maybe_start_cycle(settings) or "none", flush=True)
"""


def nightly(settings: ServiceSettings, policy_dir: Path, **fields: object) -> ServiceSettings:
    config = settings.root / "nightly.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps({"policy": str(policy_dir)}))
    return settings.model_copy(update={"cycle_config": str(config), "min_new_episodes": 3, **fields})


def triggers(settings: ServiceSettings, n: int) -> list[str]:
    """``n`` trigger processes started at once; what each returned (a run id or "none")."""
    env = service_env(settings)
    at = time.time() + (2.5 if n > 1 else 0.0)  # after every process has imported what it needs
    cmd = [sys.executable, "-c", TRIGGER, str(at)]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    procs = [subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True, **pipes) for _ in range(n)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        results.append(out.split("RESULT ")[-1].strip())
    return results


@pytest.mark.parametrize("backend", ["embedded", "redis_settings"])
def test_two_concurrent_triggers_start_one_cycle(backend, request, episodes, policy_dir) -> None:
    settings = nightly(request.getfixturevalue(backend), policy_dir)
    results = triggers(settings, 2)
    started = [r for r in results if r != "none"]
    assert len(started) == 1, results
    assert [r["run_id"] for r in list_runs(settings)] == started
    assert list_runs(settings)[0]["trigger"] == "nightly"
    assert triggers(settings, 1) == ["none"]  # nothing new since: the watermark moved


def test_a_trigger_while_another_holds_the_lock_starts_nothing(embedded, episodes, policy_dir) -> None:
    settings = nightly(embedded, policy_dir)
    with service_lock(settings, "nightly", ttl_s=NIGHTLY_LOCK_TTL_S) as held:
        assert held
        assert triggers(settings, 1) == ["none"]
    assert list_runs(settings) == []
    assert triggers(settings, 1) != ["none"]


def test_the_threshold_counts_episodes_since_the_last_cycle(embedded, policy_dir) -> None:
    settings = nightly(embedded, policy_dir)
    config = CycleConfig(policy=str(policy_dir))

    def queue(config: CycleConfig, settings: ServiceSettings, trigger: str) -> str:  # the run record, no broker
        return start_run(settings, config, trigger=trigger)

    assert maybe_start_cycle(settings, config, submit=queue) is None  # no store yet
    record_episodes(settings.root / "episodes", 2)
    assert maybe_start_cycle(settings, config, submit=queue) is None  # 2 < 3
    record_episodes(settings.root / "episodes", 1, seed=1)
    first = maybe_start_cycle(settings, config, submit=queue)
    assert first is not None
    record_episodes(settings.root / "episodes", 2, seed=2)
    assert maybe_start_cycle(settings, config, submit=queue) is None  # 2 new since the last cycle
    record_episodes(settings.root / "episodes", 1, seed=3)
    second = maybe_start_cycle(settings, config, submit=queue)
    assert second is not None and second != first


def test_the_schedule_is_nightly_in_local_time_unless_told(embedded) -> None:
    app = create_app(embedded)
    entry = app.conf.beat_schedule["nightly-cycle"]
    assert entry["task"] == "flywheel.nightly"
    assert entry["schedule"].hour == {2} and entry["schedule"].minute == {0}
    assert app.conf.enable_utc is False
    other = create_app(embedded.model_copy(update={"nightly_hour": 23, "nightly_minute": 30, "timezone": "Asia/Tokyo"}))
    assert other.conf.beat_schedule["nightly-cycle"]["schedule"].hour == {23}
    assert str(other.timezone) == "Asia/Tokyo"


def test_flywheel_beat_starts_without_a_pickle_schedule_file(embedded, tmp_path) -> None:
    env = service_env(embedded)
    log = tmp_path / "beat.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flywheel.cli", "beat"], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    beat = Worker.__new__(Worker)  # reuse its process-group kill
    beat.proc, beat.log, beat.name = proc, log, "beat"
    try:
        wait_for(lambda: "beat: Starting" in log.read_text(errors="replace"), 60, "beat to start")
        time.sleep(1.0)
        assert proc.poll() is None, log.read_text()
    finally:
        beat.kill()
    assert not list(tmp_path.glob("celerybeat-schedule*"))
