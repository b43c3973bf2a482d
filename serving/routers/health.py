"""``/healthz`` (the database answers) and Prometheus ``/metrics``."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serving.deps import RegistryDep
from serving.errors import error
from serving.metrics import REGISTRY

router = APIRouter(tags=["health"])


@router.get("/healthz", responses={503: {"description": "The database does not answer"}})
def healthz(registry: RegistryDep) -> Response:
    try:
        with registry.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as e:
        return error(503, f"the registry database does not answer: {type(e).__name__}")
    return Response('{"status":"ok"}', media_type="application/json")


@router.get("/metrics", response_class=Response)
def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
