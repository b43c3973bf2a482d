"""Who is calling, and may they? ``Authorization: Bearer <token>`` (or ``?token=`` on the websocket).

Roles rank viewer < operator < admin (``data_store.registry.tokens``). A route declares the least role
it needs with ``Viewer``, ``Operator`` or ``Admin`` (``Annotated[Caller, Depends(...)]``): no or an
unknown token is 401, a token of a lesser role 403, both JSON with the reason. With ``FLYWHEEL_AUTH=false``
every caller is an anonymous admin (a local demo on one machine). A token's answer is cached for 5 s
per server process, so a revocation takes effect within 5 s.
"""

from __future__ import annotations

import hashlib
import threading
import time
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
    bound_to: str | None = None  # None: a person; "robot:<id>": that robot only; "trainer": the trainer

    def check_robot(self, robot_id: str) -> None:
        """403 unless this caller may act as ``robot_id`` (a robot's token acts only as its own robot)."""
        if self.bound_to is not None and self.bound_to != tokens.robot_binding(robot_id):
            raise HTTPException(
                403, f"the token {self.name!r} is bound to {self.bound_to}; it cannot act as robot {robot_id!r}"
            )


_CACHE_S = 5.0  # a revoked token keeps working for at most this long in a running server
_cache: dict[str, tuple[float, Caller | None]] = {}
_cache_lock = threading.Lock()


def authenticate(registry: Registry, token: str | None, *, auth: bool) -> Caller | None:
    """The caller a token stands for (None: no such live token). Answers are cached for ``_CACHE_S``
    per token: a robot heartbeating every second would otherwise add a query to every request."""
    if not auth:
        return Caller(name="anonymous", role="admin")
    if not token:
        return None
    key = hashlib.sha256(f"{id(registry)}:{token}".encode()).hexdigest()
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    with registry.session() as s:
        row = tokens.authenticate(s, token)
        caller = Caller(name=row.name, role=row.role, bound_to=row.bound_to) if row else None
    with _cache_lock:
        if len(_cache) > 10_000:  # someone trying many tokens: forget rather than grow
            _cache.clear()
        _cache[key] = (now + _CACHE_S, caller)
    return caller


def require(role: str, *, bound: tuple[str, ...] = (), people: bool = True) -> Callable[..., Caller]:
    """The least ``role``; a bound token (a robot's, the trainer's) only where ``bound`` names its kind (reads are
    open to it); ``people=False``: not a person's token either, unless an admin's."""

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
        kind = caller.bound_to.split(":", 1)[0] if caller.bound_to else None
        if kind is not None and role != "viewer" and kind not in bound:
            raise HTTPException(403, f"the token {caller.name!r} is bound to {caller.bound_to}; it cannot do this")
        if kind is None and not people and caller.role != "admin":
            who = " or ".join(f"the {b}'s token" for b in bound)
            raise HTTPException(403, f"only {who} (or an admin) can do this; the token {caller.name!r} is a person's")
        return caller

    return dependency


Viewer = Annotated[Caller, Depends(require("viewer"))]
Operator = Annotated[Caller, Depends(require("operator"))]
Admin = Annotated[Caller, Depends(require("admin"))]
# A robot reporting as itself: people's operator tokens, and a robot's own token (handlers call check_robot).
RobotOperator = Annotated[Caller, Depends(require("operator", bound=("robot",)))]
# A training run's progress and result: the trainer's token (or an admin), never a robot's or a person's operator.
Trainer = Annotated[Caller, Depends(require("operator", bound=("trainer",), people=False))]
