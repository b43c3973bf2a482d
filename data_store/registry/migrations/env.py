"""Alembic's environment for the registry: run by ``data_store.registry.db.upgrade`` on the connection it opened
(PostgreSQL schema already mapped), never from an ``alembic.ini``.

To add a revision: change ``models.py``, then write ``versions/NNNN_what.py`` with ``revision``,
``down_revision`` and an ``upgrade()`` of ``op`` calls (``alembic.autogenerate.produce_migrations`` against a
registry at the previous head shows the operations). A registry opened by a newer release is upgraded in place.
"""

from __future__ import annotations

from alembic import context

from data_store.registry import models  # noqa: F401  (registers the tables on Base.metadata)
from data_store.registry.db import Base

config = context.config
context.configure(
    connection=config.attributes["connection"],
    target_metadata=Base.metadata,
    version_table_schema=config.attributes.get("schema"),
    render_as_batch=True,  # SQLite alters a table by copying it
)
with context.begin_transaction():
    context.run_migrations()
