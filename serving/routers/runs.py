"""Training runs: start a flywheel cycle on the trainer service, follow its progress, read its result.

The trainer service (``trainer.service``) is another component; when it cannot be imported or refuses
the job (no broker), the request is still recorded, with status ``unavailable`` and the reason, and the
answer is 503 with that reason. The server reads a run's progress from its registry row only: the trainer
writes each change of the run's and its stages' state there (``trainer.service.progress.mirror``), and a
trainer that is not the service reports with PATCH.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from data_store.registry import runs
from serving.auth import Operator, Trainer, Viewer
from serving.deps import RegistryDep
from serving.errors import error
from serving.schemas import Offset, RowId, RunIn, RunOut, RunUpdate

router = APIRouter(tags=["training runs"])


def submit_to_trainer(params: dict[str, Any], run_id: str) -> str:
    """Queue a cycle on the trainer service as its run ``run_id``. Raises with a reason when it cannot."""
    from trainer.service.pipeline import submit_cycle
    from trainer.service.stage import CycleConfig

    config = CycleConfig.from_json(params)
    config.resolved_recipe()  # ValueError naming an unknown recipe, before anything is queued
    return submit_cycle(config, trigger="serve", run_id=run_id)


@router.post(
    "/runs",
    status_code=202,
    response_model=RunOut,
    responses={422: {"description": "The trainer refused the config"}, 503: {"description": "No trainer"}},
)
def start_run(registry: RegistryDep, caller: Operator, body: RunIn) -> RunOut | JSONResponse:
    """Start one flywheel cycle (snapshot → world model → reward model → imagined GRPO → evaluate → register)."""
    params = body.model_dump()
    with registry.session() as s:  # the trainer's run id first, so its first report finds this row
        row = runs.request_run(s, params, by=caller.name)
        run_id, external = row.id, runs.update_run(s, row.id, external_id=runs.new_run_id()).external_id
    try:
        submit_to_trainer(params, str(external))
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
