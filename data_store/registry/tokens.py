"""API tokens with roles: viewer (reads), operator (robots report, runs and labels), admin (registers,
rolls out, rolls back; everything an operator can).

A token is 32 random bytes (``secrets.token_urlsafe``) shown once; only its sha256 is stored. A slow
hash (pbkdf2) guards low-entropy passwords against guessing; a 256-bit random token cannot be guessed,
so one sha256 suffices and lets a request look its token up by hash in one indexed query.
"""

from __future__ import annotations

import hashlib
import re
import secrets

import sqlalchemy as sa
from sqlalchemy.orm import Session

from data_store.registry.db import utcnow
from data_store.registry.errors import Invalid, NotFound
from data_store.registry.models import ApiToken

ROLES = ("viewer", "operator", "admin")
PREFIX = "fw_"


def role_allows(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


NAME_MAX = 128  # the column's length (models.ApiToken.name)
_ROBOT_ID = re.compile(r"[A-Za-z0-9_.:@-]{1,128}")  # as the API's robot ids


TRAINER = "trainer"


def robot_binding(robot_id: str) -> str:
    return f"robot:{robot_id}"


def create_token(s: Session, role: str, *, name: str = "", bound_to: str | None = None) -> tuple[str, ApiToken]:
    """A new token for ``role``; returns (the token, shown once; its row). ``bound_to``: ``robot:<id>`` (a robot's
    token: it acts only as that robot) or ``trainer`` (writes training runs); None: a person's token."""
    if role not in ROLES:
        raise Invalid(f"role: expected one of {ROLES}, got {role!r}")
    if len(name) > NAME_MAX or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise Invalid(f"name: at most {NAME_MAX} characters, no control characters (got {len(name)} characters)")
    if bound_to is not None:
        robot = bound_to.removeprefix("robot:")
        if not (bound_to == TRAINER or (bound_to.startswith("robot:") and _ROBOT_ID.fullmatch(robot))):
            raise Invalid(f"bound_to: expected 'trainer' or 'robot:<robot id>', got {bound_to!r}")
        if role != "operator":
            raise Invalid(f"role: a robot's or the trainer's token is an operator token, not {role}")
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(name=name or bound_to or role, role=role, token_sha256=_digest(token), bound_to=bound_to)
    s.add(row)
    s.flush()
    return token, row


def authenticate(s: Session, token: str) -> ApiToken | None:
    """The live token row for ``token``, or None."""
    row = s.scalar(sa.select(ApiToken).where(ApiToken.token_sha256 == _digest(token)))
    if row is None or row.revoked_at is not None:
        return None
    return row


def revoke_token(s: Session, token_id: int) -> ApiToken:
    row = s.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"no token {token_id}")
    row.revoked_at = row.revoked_at or utcnow()
    s.flush()
    return row


def list_tokens(s: Session) -> list[ApiToken]:
    return list(s.scalars(sa.select(ApiToken).order_by(ApiToken.id)))
