"""The app factory: settings → registry → routers, error handlers and metrics. ``main`` stays thin.

uvicorn serving.app:create_app --factory      (or ``flywheel serve run``)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from serving.edge import EdgeChecks
from serving.errors import install_error_handlers
from serving.metrics import install_metrics
from serving.routers import dashboard, episodes, health, inference, policies, robots, rollouts, runs
from serving.schemas import ERRORS
from serving.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    registry = settings.open_registry()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        app.state.inference.close()
        registry.close()

    app = FastAPI(
        title="vla-flywheel control plane",
        version="0.1.0",
        description="Policy registry, rollouts and rollbacks, robots, episodes, training runs, remote inference.",
        lifespan=lifespan,
        responses=ERRORS,  # every operation documents the errors it can answer, in their one shape
    )
    app.state.settings = settings
    app.state.registry = registry
    app.state.inference = inference.PolicyServer(registry, cache=settings.inference_cache)
    install_error_handlers(app)
    install_metrics(app)
    app.add_middleware(EdgeChecks, settings=settings)  # outermost: before routing, auth and the database
    for module in (health, policies, rollouts, robots, episodes, runs, inference, dashboard):
        app.include_router(module.router)
    return app
