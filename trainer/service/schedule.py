"""The nightly cycle: ``celery beat`` sends ``flywheel.nightly`` at 02:00 local time (configurable:
``celery_app.configure_beat``), and the worker that receives it (``nightly_task``, below) starts a cycle when
enough new episodes came in since the last one.

"Two beat processes never start two cycles": the decision (count the new episodes, queue the cycle,
move the watermark) happens under one lock — Redis with a TTL when the broker is Redis (beats on
several machines), a file lock on the data dir otherwise — and the loser of the race returns
without starting anything; a trigger that comes later finds the watermark moved and no new
episodes. The watermark is the newest ``ended_at`` among the episodes the last cycle counted, so an
episode that finishes while a cycle is being queued counts for the next one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from trainer.service.celery_app import app
from trainer.service.locks import service_lock
from trainer.service.pipeline import submit_cycle
from trainer.service.progress import read_json, write_json
from trainer.service.settings import ServiceSettings, load_settings
from trainer.service.stage import CycleConfig, StageError

log = logging.getLogger(__name__)
NIGHTLY_LOCK_TTL_S = 300


def watermark_path(settings: ServiceSettings) -> Path:
    return settings.root / "service" / "last_cycle.json"


def nightly_config(settings: ServiceSettings) -> CycleConfig:
    if not settings.cycle_config:
        raise StageError("nightly cycle: no cycle config; set FLYWHEEL_CYCLE_CONFIG to a JSON CycleConfig file")
    try:
        return CycleConfig.from_json(json.loads(Path(settings.cycle_config).read_text()))
    except (OSError, ValueError, TypeError) as e:
        raise StageError(f"nightly cycle: cannot read {settings.cycle_config}: {e}") from e


def maybe_start_cycle(
    settings: ServiceSettings,
    config: CycleConfig | None = None,
    submit: Callable[..., str] | None = None,
) -> str | None:
    """Queue a cycle if ``min_new_episodes`` complete episodes ended since the last one; its run id or None."""
    from data_store.episodes import EpisodeStore  # zarr: only when beat fires, not as every worker starts

    submit = submit or submit_cycle
    with service_lock(settings, "nightly", ttl_s=NIGHTLY_LOCK_TTL_S, wait=False) as acquired:
        if not acquired:
            log.info("nightly: another trigger holds the lock; not starting a cycle")
            return None
        config = config or nightly_config(settings)
        path = watermark_path(settings)
        since = float(read_json(path)["until"]) if path.is_file() else float("-inf")
        if not Path(settings.store_path).exists():
            log.info("nightly: no episode store at %s yet", settings.store_path)
            return None
        infos = EpisodeStore(settings.store_path).episodes(task=config.task, status="complete")
        new = [i for i in infos if (i.ended_at or i.started_at) > since]
        if len(new) < settings.min_new_episodes:
            log.info("nightly: %d new episodes, fewer than %d; no cycle", len(new), settings.min_new_episodes)
            return None
        run_id = submit(config, settings, trigger="nightly")
        until = max(i.ended_at or i.started_at for i in new)
        write_json(path, {"until": until, "run_id": run_id, "new_episodes": len(new)})
        log.info("nightly: %d new episodes; started run %s", len(new), run_id)
        return run_id


@app.task(name="flywheel.nightly")
def nightly_task() -> str | None:
    """Beat's entry: start a cycle if enough new episodes came in."""
    return maybe_start_cycle(load_settings())


def recover_interrupted(
    settings: ServiceSettings, resume: Callable[[str, ServiceSettings], str] | None = None, *, limit: int = 50
) -> dict[str, str]:
    """Resume the runs a broker outage interrupted: a run still ``running`` with a stage left ``interrupted`` (its
    lease was lost) and no worker holding that stage's lock now. Each run is resumed at most
    ``settings.max_recoveries`` times; past that it fails with what to do. Returns ``{run id: what was done}``."""
    from trainer.service.execute import fail_run
    from trainer.service.pipeline import resume_cycle
    from trainer.service.progress import list_runs, run_status, update_run

    resume = resume or (lambda run_id, s: resume_cycle(run_id, s))
    done: dict[str, str] = {}
    for record in list_runs(settings, limit=limit):
        if record["state"] != "running" or record.get("key") is None:
            continue
        status = run_status(record["run_id"], settings)
        stuck = [st["stage"] for st in status["progress"] if st.get("state") == "interrupted"]
        if not stuck:
            continue
        with service_lock(settings, f"stage:{record['key']}:{stuck[0]}", ttl_s=30, wait=False) as free:
            if not free:  # a worker runs it again already
                continue
        run_id, tries = record["run_id"], int(record.get("recoveries", 0))
        if tries >= settings.max_recoveries:
            reason = (
                f"{stuck[0]} was interrupted {tries + 1} times (broker outages); after fixing the broker: "
                f"flywheel train cycle --resume {run_id}"
            )
            fail_run(settings, run_id, stuck[0], reason)
            done[run_id] = "failed: " + reason
            continue
        update_run(settings, run_id, recoveries=tries + 1)
        resume(run_id, settings)
        done[run_id] = f"resumed at {stuck[0]} (recovery {tries + 1} of {settings.max_recoveries})"
        log.info("recover: run %s %s", run_id, done[run_id])
    return done


@app.task(name="flywheel.recover")
def recover_task() -> dict[str, str]:
    """Beat's sweep: resume the runs a broker outage interrupted, once the broker is back."""
    return recover_interrupted(load_settings())
