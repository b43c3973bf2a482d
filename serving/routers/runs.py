"""Training runs: start a flywheel cycle on the trainer service, follow its progress, read its result.

The server hands a cycle to the trainer as one message sent by task name (``data_store.jobs.send_cycle``) on
the broker both read from the settings; it needs none of the trainer's code. When the broker cannot be reached the
request is still recorded, with status ``unavailable`` and the reason, and the answer is 503 with that reason. A
worker checks the parameters (a recipe it does not know fails the run with that reason) and the trainer writes each
change of the run's and its stages' state into the run's registry row (``trainer.service.progress.mirror``), which
is all the server reads; a trainer that is not the service reports with PATCH.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from data_store.jobs import send_cycle
from data_store.registry import runs
from serving.auth import Operator, Trainer, Viewer
from serving.deps import RegistryDep, SettingsDep
from serving.errors import error
from serving.schemas import Offset, RowId, RunIn, RunOut, RunUpdate

router = APIRouter(tags=["training runs"])


@router.post(
    "/runs",
    status_code=202,
    response_model=RunOut,
    responses={503: {"description": "The trainer's queue cannot be reached"}},
)
def start_run(registry: RegistryDep, settings: SettingsDep, caller: Operator, body: RunIn) -> RunOut | JSONResponse:
    """Start one flywheel cycle (snapshot → world model → reward model → imagined GRPO → evaluate → register)."""
    params = body.model_dump()
    with registry.session() as s:  # the trainer's run id first, so its first report finds this row
        row = runs.request_run(s, params, by=caller.name)
        run_id, external = row.id, runs.update_run(s, row.id, external_id=runs.new_run_id()).external_id
    try:
        send_cycle(settings, params, str(external))
    except Exception as e:  # a broker that is down or refuses the message; no Celery here
        reason = f"the trainer's queue could not take the run: {type(e).__name__}: {e}"
        with registry.session() as s:
            row = runs.update_run(s, run_id, status="unavailable", reason=reason)
            return error(503, reason, run=RunOut.model_validate(row).model_dump(mode="json"))
    with registry.session() as s:
        return RunOut.model_validate(runs.get_run(s, run_id))


@router.get("/runs", response_model=list[RunOut])
def list_runs(
    registry: RegistryDep, _: Viewer, limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Offset = 0
) -> list[RunOut]:
    with registry.session() as s:
        rows = runs.list_runs(s, limit=limit, offset=offset)
    return [RunOut.model_validate(r) for r in rows]


@router.get("/runs/{run_id}", response_model=RunOut)
def get_run(registry: RegistryDep, _: Viewer, run_id: RowId) -> RunOut:
    with registry.session() as s:
        row = runs.get_run(s, run_id)
    return RunOut.model_validate(row)


@router.patch("/runs/{run_id}", response_model=RunOut)
def update_run(registry: RegistryDep, _: Trainer, run_id: RowId, body: RunUpdate) -> RunOut:
    """Progress from a trainer: status, current stage, fraction done (0..1), result, reason."""
    with registry.session() as s:
        return RunOut.model_validate(runs.update_run(s, run_id, **body.model_dump(exclude_none=True)))
