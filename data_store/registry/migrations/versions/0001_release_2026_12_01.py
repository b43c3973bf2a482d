"""The registry as the release of 2026-12-01 made it: every table, before migrations existed.

A registry made by that release (or an older one) has these tables and no ``alembic_version``; opening it stamps
it at this revision, after adding the nullable columns older releases lacked (``db.upgrade``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from data_store.registry import db

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "aliases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=160), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("previous", sa.String(length=128), nullable=True),
        sa.Column("set_at", db.UTCDateTime(), nullable=False),
        sa.Column("set_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scope", "name"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("bound_to", sa.String(length=160), nullable=True),
        sa.Column("created_at", db.UTCDateTime(), nullable=False),
        sa.Column("revoked_at", db.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_sha256"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", db.UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("robot_id", sa.String(length=128), nullable=True),
        sa.Column("version", sa.String(length=128), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_audit_log_action"), "audit_log", ["action"], unique=False)
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"], unique=False)
    op.create_index("ix_audit_robot_at", "audit_log", ["robot_id", "at"], unique=False)
    op.create_table(
        "episodes",
        sa.Column("episode_id", sa.String(length=128), nullable=False),
        sa.Column("robot_id", sa.String(length=128), nullable=False),
        sa.Column("policy_version", sa.String(length=128), nullable=False),
        sa.Column("task", sa.String(length=128), nullable=False),
        sa.Column("success", sa.String(length=8), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.Column("started_at", db.UTCDateTime(), nullable=True),
        sa.Column("ended_at", db.UTCDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("labeled_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("episode_id"),
    )
    op.create_index(op.f("ix_episodes_robot_id"), "episodes", ["robot_id"], unique=False)
    op.create_index("ix_episodes_version_ended", "episodes", ["policy_version", "ended_at"], unique=False)
    op.create_table(
        "policy_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("artifact_path", sa.Text(), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("parent", sa.String(length=128), nullable=True),
        sa.Column("training_run", sa.String(length=128), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("action_dim", sa.Integer(), nullable=True),
        sa.Column("created_at", db.UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sha256"),
        sa.UniqueConstraint("version"),
    )
    op.create_table(
        "robots",
        sa.Column("robot_id", sa.String(length=128), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("registered_at", db.UTCDateTime(), nullable=False),
        sa.Column("last_seen", db.UTCDateTime(), nullable=True),
        sa.Column("running_version", sa.String(length=128), nullable=True),
        sa.Column("health", sa.JSON(), nullable=False),
        sa.Column("last_episode_id", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("robot_id"),
    )
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("robots", sa.JSON(), nullable=False),
        sa.Column("canary", sa.JSON(), nullable=False),
        sa.Column("previous", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("threshold", sa.Double(), nullable=True),
        sa.Column("min_episodes", sa.Integer(), nullable=False),
        sa.Column("max_episodes", sa.Integer(), nullable=True),
        sa.Column("looks", sa.Integer(), nullable=True),
        sa.Column("created_at", db.UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("decided_at", db.UTCDateTime(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "training_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("requested_at", db.UTCDateTime(), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("updated_at", db.UTCDateTime(), nullable=False),
        sa.Column("stage", sa.String(length=64), nullable=True),
        sa.Column("progress", sa.Double(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("external_id", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
