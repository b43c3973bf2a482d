"""Training runs: start a flywheel cycle on the trainer service, follow its progress, read its result.

The trainer service (``trainer.service``) is another component; when it cannot be imported or refuses
the job (no broker), the request is still recorded, with status ``unavailable`` and the reason, and the
answer is 503 with that reason. A trainer that is not the service can report progress with PATCH.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from data_store.registry import runs
from data_store.registry.models import TrainingRun
from serving.auth import Operator, Trainer, Viewer
from serving.deps import RegistryDep
from serving.errors import error
from serving.schemas import Offset, RowId, RunIn, RunOut, RunUpdate

router = APIRouter(tags=["training runs"])
log = logging.getLogger("serving.runs")


def submit_to_trainer(params: dict[str, Any]) -> str:
    """Queue a cycle on the trainer service; returns its run id. Raises with a reason when it cannot."""
    from trainer.service.pipeline import submit_cycle
    from trainer.service.stage import CycleConfig

    config = CycleConfig.from_json(params)
    config.resolved_recipe()  # ValueError naming an unknown recipe, before anything is queued
    return submit_cycle(config, trigger="serve")


def trainer_status(external_id: str) -> dict[str, Any]:
    from trainer.service.progress import run_status

    status: dict[str, Any] = run_status(external_id)
    return status


def refresh(registry: RegistryDep, row: TrainingRun) -> TrainingRun:
    """Copy the trainer's view of the run (state, current stage, fraction of stages done) into the row,
    once a worker has taken it (before that, progress PATCHed by another trainer stands)."""
    if not row.external_id or row.status in ("succeeded", "failed", "unavailable"):
        return row
    try:
        status = trainer_status(row.external_id)
    except Exception as e:  # the trainer's files are elsewhere or gone: keep what we know
        log.info("run %s: trainer status unavailable: %s", row.id, e)
        return row
    if status.get("state") == "queued":  # no worker has taken it yet: nothing to copy
        return row
    from trainer.service.progress import registry_fields

    with registry.session() as s:
        return runs.update_run(s, row.id, **registry_fields(status))


@router.post(
    "/runs",
    status_code=202,
    response_model=RunOut,
    responses={422: {"description": "The trainer refused the config"}, 503: {"description": "No trainer"}},
)
def start_run(registry: RegistryDep, caller: Operator, body: RunIn) -> RunOut | JSONResponse:
    """Start one flywheel cycle (snapshot → world model → reward model → imagined GRPO → evaluate → register)."""
    params = body.model_dump()
    with registry.session() as s:
        run_id = runs.request_run(s, params, by=caller.name).id
    try:
        external = submit_to_trainer(params)
    except ValueError as e:  # a config the trainer refuses (an unknown recipe): the caller's mistake
        reason = f"the trainer refused the run: {e}"
        with registry.session() as s:
            row = runs.update_run(s, run_id, status="failed", reason=reason)
            return error(422, reason, run=RunOut.model_validate(row).model_dump(mode="json"))
    except Exception as e:  # ImportError (no trainer here), a broker that is down, a refused config
        reason = f"the trainer service could not take the run: {type(e).__name__}: {e}"
        with registry.session() as s:
            row = runs.update_run(s, run_id, status="unavailable", reason=reason)
            return error(503, reason, run=RunOut.model_validate(row).model_dump(mode="json"))
    with registry.session() as s:
        return RunOut.model_validate(runs.update_run(s, run_id, external_id=external))


@router.get("/runs", response_model=list[RunOut])
def list_runs(
    registry: RegistryDep, _: Viewer, limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Offset = 0
) -> list[RunOut]:
    with registry.session() as s:
        rows = runs.list_runs(s, limit=limit, offset=offset)
    return [RunOut.model_validate(refresh(registry, r)) for r in rows]


@router.get("/runs/{run_id}", response_model=RunOut)
def get_run(registry: RegistryDep, _: Viewer, run_id: RowId) -> RunOut:
    with registry.session() as s:
        row = runs.get_run(s, run_id)
    return RunOut.model_validate(refresh(registry, row))


@router.patch("/runs/{run_id}", response_model=RunOut)
def update_run(registry: RegistryDep, _: Trainer, run_id: RowId, body: RunUpdate) -> RunOut:
    """Progress from a trainer: status, current stage, fraction done (0..1), result, reason."""
    with registry.session() as s:
        return RunOut.model_validate(runs.update_run(s, run_id, **body.model_dump(exclude_none=True)))
