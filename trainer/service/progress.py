"""The run record: what a run is, where it stands, stage by stage. Read by the CLI and the server.

Layout under ``runs/<run_id>/`` on the shared data dir (JSON, written atomically):

- ``run.json``: run id, config, state (queued | running | succeeded | failed), reason, the snapshot,
  the idempotency key, the registered candidate.
- ``stages/<stage>.json``: state (pending | running | done | failed), step, total, metrics, worker,
  attempts (deliveries), times. One file per stage, so two workers training two stages at once never
  write the same file.

The same progress goes to the result backend as Celery ``PROGRESS`` state (``tasks.py``); the files
are what survives a broker restart and what ``run_status`` reads. Every change of a run's or a stage's state is
also mirrored into the registry's training-run row (:func:`mirror`), so the control plane's ``/runs`` and the
dashboard show every cycle however it was started (CLI, nightly beat, demo, REST).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.service.locks import LeaseLost, file_lock
from trainer.service.settings import ServiceSettings, load_settings

log = logging.getLogger("trainer.service.progress")
RUN_STATES = ("queued", "running", "succeeded", "failed")
STAGE_STATES = ("pending", "running", "done", "failed")


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write-then-rename, so a reader never sees half a file and a crash never leaves one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def run_dir(settings: ServiceSettings, run_id: str) -> Path:
    if not run_id or "/" in run_id or run_id.startswith("."):
        raise ValueError(f"not a run id: {run_id!r}")
    return settings.runs_dir / run_id


def create_run(
    settings: ServiceSettings, run_id: str, config: Mapping[str, Any], stages: list[str], trigger: str
) -> dict[str, Any]:
    record = {
        "run_id": run_id,
        "created_at": time.time(),
        "trigger": trigger,
        "config": dict(config),
        "stages": stages,
        "state": "queued",
        "reason": None,
        "snapshot": None,
        "key": None,
        "candidate": None,
    }
    write_json(run_dir(settings, run_id) / "run.json", record)
    for stage in ["snapshot", *stages]:
        write_json(run_dir(settings, run_id) / "stages" / f"{stage}.json", {"stage": stage, "state": "pending"})
    return record


def read_run(settings: ServiceSettings, run_id: str) -> dict[str, Any]:
    path = run_dir(settings, run_id) / "run.json"
    if not path.is_file():
        raise KeyError(f"no run {run_id!r} in {settings.runs_dir}")
    return read_json(path)


def update_run(
    settings: ServiceSettings,
    run_id: str,
    mutate: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    *,
    reopen: bool = False,
    **fields: Any,
) -> dict[str, Any]:
    """Read-modify-write under a file lock; a run that already failed stays failed unless ``reopen``.

    ``mutate(record) -> more fields`` runs under the lock, for updates that depend on the record.
    """
    d = run_dir(settings, run_id)
    with file_lock(d / "run.lock"):
        record = read_run(settings, run_id)
        if mutate is not None:
            fields = {**fields, **mutate(record)}
        if record["state"] == "failed" and not reopen:
            fields.pop("reason", None)
            if fields.get("state") != "failed":
                fields.pop("state", None)
        record.update(fields)
        write_json(d / "run.json", record)
    mirror(settings, run_id)
    return record


def update_stage(settings: ServiceSettings, run_id: str, stage: str, **fields: Any) -> dict[str, Any]:
    path = run_dir(settings, run_id) / "stages" / f"{stage}.json"
    record: dict[str, Any] = read_json(path) if path.is_file() else {"stage": stage, "state": "pending"}
    record.update(fields, updated_at=time.time())
    write_json(path, record)
    if "state" in fields:  # a stage started, finished or failed (not every step's progress)
        mirror(settings, run_id)
    return record


REGISTRY_STATES = {"queued": "requested", "running": "running", "succeeded": "succeeded", "failed": "failed"}


def registry_fields(status: Mapping[str, Any]) -> dict[str, Any]:
    """``run_status``'s record as the registry's training-run row: state, the running stage, the share of stages
    done, the reason, and the result once the cycle has one."""
    stages = status.get("progress") or []
    done = sum(1 for st in stages if st.get("state") == "done")
    running = [st.get("stage") for st in stages if st.get("state") == "running"]
    outcome = status.get("outcome")
    return {
        "status": REGISTRY_STATES.get(str(status.get("state")), "running"),
        "stage": str(running[0]) if running else None,
        "progress": done / len(stages) if stages else 0.0,
        "reason": status.get("reason"),
        "result": {
            "candidate": status.get("candidate"),
            "key": status.get("key"),
            "outcome": outcome,
            "outcome_reason": status.get("outcome_reason"),
            # imagination checked against the simulated arm before GRPO (trainer/agreement.py), where it was
            "agreement": ((((status.get("results") or {}).get("grpo") or {}).get("info")) or {}).get("agreement"),
        }
        if outcome
        else None,
    }


_registries: dict[tuple[str, str, str], Any] = {}


def mirror(settings: ServiceSettings, run_id: str) -> None:
    """Write the run's state into the registry (best effort: a registry that cannot be reached is logged and the
    cycle goes on). A run started by the control plane (trigger ``serve``) already has its row, which the server
    names before it submits the run; any other gets one here."""
    try:
        from data_store.registry.runs import mirror_run

        status = run_status(run_id, settings)
        key = (settings.registry_db, settings.registry_schema, str(settings.registry_artifacts_dir))
        registry = _registries.get(key)
        if registry is None:
            registry = _registries[key] = settings.open_registry()
        trigger = str(status.get("trigger") or "cli")
        with registry.session() as s:
            mirror_run(
                s,
                run_id,
                params={**(status.get("config") or {}), "trigger": trigger},
                by=f"trainer ({trigger})",
                create=trigger != "serve",
                **registry_fields(status),
            )
    except Exception as e:  # the run's files are the record; the registry's row is a view of it
        log.warning("run %s: not mirrored into the registry: %s", run_id, e)


@dataclass
class StageReporter:
    """``report(step, total=None, **metrics)`` for a stage: into its stage file, and to ``publish``
    (the Celery task's ``update_state``), at most every ``every_s`` seconds except the last step."""

    settings: ServiceSettings
    run_id: str
    stage: str
    publish: Callable[[dict[str, Any]], None] | None = None
    every_s: float = 0.5
    lease: Any = None  # locks.Lease: a stage whose lease was lost stops here
    _last: float = field(default=0.0, init=False)
    _publish_failed: bool = field(default=False, init=False)

    def __call__(self, step: int, total: int | None = None, **metrics: float) -> None:
        if self.lease is not None and self.lease.lost.is_set():
            raise LeaseLost(f"{self.stage}: its lease was lost (broker unreachable?); it resumes from its checkpoints")
        now = time.monotonic()
        if now - self._last < self.every_s and (total is None or step < total):
            return
        self._last = now
        clean = {k: float(v) for k, v in metrics.items()}
        update_stage(self.settings, self.run_id, self.stage, step=int(step), total=total, metrics=clean)
        if self.publish is not None:  # progress on the result backend is a view: a broker outage never fails a stage
            try:
                self.publish(
                    {"run_id": self.run_id, "stage": self.stage, "step": step, "total": total, "metrics": clean}
                )
                self._publish_failed = False
            except Exception as e:
                if not self._publish_failed:
                    log.warning(
                        "run %s, %s: progress not published (%s); the stage goes on", self.run_id, self.stage, e
                    )
                self._publish_failed = True


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_status(run_id: str, settings: ServiceSettings | None = None) -> dict[str, Any]:
    """The run record with each stage's progress, as JSON-ready data (for the CLI and the server)."""
    settings = settings or load_settings()
    record = read_run(settings, run_id)
    stages_dir = run_dir(settings, run_id) / "stages"
    files = [stages_dir / f"{s}.json" for s in ["snapshot", *record["stages"]]]
    record["progress"] = [read_json(f) if f.is_file() else {"stage": f.stem, "state": "pending"} for f in files]
    return record


def list_runs(settings: ServiceSettings | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The latest runs, newest first (run ids sort by creation time)."""
    settings = settings or load_settings()
    if not settings.runs_dir.is_dir():
        return []
    ids = sorted((p.name for p in settings.runs_dir.iterdir() if (p / "run.json").is_file()), reverse=True)
    return [read_run(settings, i) for i in ids[:limit]]
