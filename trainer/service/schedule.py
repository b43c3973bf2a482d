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
