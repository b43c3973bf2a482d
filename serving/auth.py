"""Who is calling, and may they? ``Authorization: Bearer <token>`` (or ``?token=`` on the websocket).

Roles rank viewer < operator < admin (``data_store.registry.tokens``). A route declares the least role
it needs with ``Viewer``, ``Operator`` or ``Admin`` (``Annotated[Caller, Depends(...)]``): no or an
unknown token is 401, a token of a lesser role 403, both JSON with the reason. With ``FLYWHEEL_AUTH=false``
every caller is an anonymous admin (a local demo on one machine).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from data_store.registry import Registry, tokens
from serving.deps import RegistryDep, SettingsDep

bearer = HTTPBearer(auto_error=False, description="An API token from `flywheel serve token create`.")


@dataclass(frozen=True)
class Caller:
    name: str
    role: str


def authenticate(registry: Registry, token: str | None, *, auth: bool) -> Caller | None:
    if not auth:
        return Caller(name="anonymous", role="admin")
    if not token:
        return None
    with registry.session() as s:
        row = tokens.authenticate(s, token)
        return Caller(name=row.name, role=row.role) if row else None


def require(role: str) -> Callable[..., Caller]:
    def dependency(
        registry: RegistryDep,
        settings: SettingsDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Caller:
        caller = authenticate(registry, credentials.credentials if credentials else None, auth=settings.auth)
        if caller is None:
            raise HTTPException(
                401, "a valid API token is required (Authorization: Bearer <token>)", {"WWW-Authenticate": "Bearer"}
            )
        if not tokens.role_allows(caller.role, role):
            raise HTTPException(403, f"this needs the {role} role; the token {caller.name!r} is {caller.role}")
        return caller

    return dependency


Viewer = Annotated[Caller, Depends(require("viewer"))]
Operator = Annotated[Caller, Depends(require("operator"))]
Admin = Annotated[Caller, Depends(require("admin"))]
