"""Rollouts record what each robot said of them (``rollouts.outcomes``: a refusal and its reason)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    # A registry from before migrations may have it already: its columns were brought up to date by
    # ``db._add_new_columns`` against the current models before it was stamped at 0001.
    schema = op.get_context().version_table_schema  # the registry's PostgreSQL schema, or None
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("rollouts", schema=schema)}
    if "outcomes" not in columns:
        op.add_column("rollouts", sa.Column("outcomes", sa.JSON(), nullable=True), schema=schema)
