"""The dashboard: one HTML page and one script, no build step, no outside assets (works offline).

The page reads the same REST API as everything else, with the token typed into it (kept in the
browser's localStorage); rollout and rollback buttons appear for an admin token.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from serving.auth import Viewer
from serving.schemas import WhoAmI

router = APIRouter(tags=["dashboard"])
STATIC = Path(__file__).resolve().parent.parent / "static"


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/dashboard")


@router.get("/dashboard", include_in_schema=False)
def dashboard() -> FileResponse:
    return FileResponse(STATIC / "dashboard.html", media_type="text/html")


@router.get("/dashboard.js", include_in_schema=False)
def dashboard_js() -> FileResponse:
    return FileResponse(STATIC / "dashboard.js", media_type="text/javascript")


@router.get("/whoami", response_model=WhoAmI)
def whoami(caller: Viewer) -> WhoAmI:
    """The token's name and role (the dashboard shows admin buttons for an admin)."""
    return WhoAmI(name=caller.name, role=caller.role)
