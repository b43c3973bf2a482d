"""Prometheus metrics for ``/metrics``: requests by route and status with latency, rollouts, rollbacks,
swaps reported by robots (taken or refused), and remote-inference chunks served."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry()
REQUESTS = Counter("flywheel_http_requests", "HTTP requests", ["method", "route", "status"], registry=REGISTRY)
LATENCY = Histogram(
    "flywheel_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
ROLLOUTS = Counter("flywheel_rollouts", "Rollouts started", ["kind"], registry=REGISTRY)
ROLLBACKS = Counter("flywheel_rollbacks", "Rollbacks", registry=REGISTRY)
SWAPS = Counter("flywheel_swaps", "Swaps reported by robots", ["outcome"], registry=REGISTRY)
CHUNKS = Counter("flywheel_inference_chunks", "Action chunks served by remote inference", registry=REGISTRY)


def install_metrics(app: FastAPI) -> None:
    @app.middleware("http")
    async def _measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")  # the template, so label values stay few
        LATENCY.labels(request.method, path).observe(time.perf_counter() - start)
        REQUESTS.labels(request.method, path, str(response.status_code)).inc()
        return response
