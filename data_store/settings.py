"""What every component of one flywheel reads from the environment: where its data and its registry are.

``FLYWHEEL_<NAME>`` variables (pydantic-settings). The server (``serving.settings.Settings``) and the trainer
service (``trainer.service.settings.ServiceSettings``) both extend this base, so one environment points both at
the same registry (the same database, the same PostgreSQL schema and the same artifact folder) and the same job
queue (the broker the server sends cycles to, ``data_store.jobs``). (When the trainer
read no schema, it registered candidates and mirrored runs where a server with ``FLYWHEEL_REGISTRY_SCHEMA`` set
did not look.)
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from data_store.registry import Registry


class FlywheelSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLYWHEEL_", extra="ignore", frozen=True)

    data_dir: Path = Field(default=Path("flywheel_data"), description="Everything kept on disk, by default.")
    registry_url: str = Field(default="", description="The registry's SQLAlchemy URL; empty: SQLite under DATA_DIR.")
    registry_schema: str = Field(default="", description="PostgreSQL schema for the registry's tables.")
    registry_artifacts: str = Field(default="", description="The registry's artifact folder; empty: under DATA_DIR.")
    broker_url: str = Field(default="", description="Celery broker; empty: sqla+sqlite under DATA_DIR (no server).")
    redis_prefix: str = Field(default="", description="Prefix of every Redis key (several flywheels, one Redis).")

    @cached_property
    def root(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def registry_db(self) -> str:
        return self.registry_url or f"sqlite:///{self.root / 'registry' / 'registry.db'}"

    @property
    def registry_artifacts_dir(self) -> Path:
        return Path(self.registry_artifacts) if self.registry_artifacts else self.root / "registry" / "artifacts"

    @property
    def broker(self) -> str:
        """The trainer's job queue: the one the server sends cycles to and the workers take them from."""
        if self.broker_url:
            return self.broker_url
        return f"sqla+sqlite:///{self.root / 'celery' / 'broker.sqlite'}"

    @property
    def on_redis(self) -> bool:
        return self.broker.startswith(("redis://", "rediss://"))

    def broker_transport(self) -> dict[str, object]:
        """Kombu transport options every client of the broker needs: the key prefix on Redis; on SQLite, wait for
        a writer instead of "database is locked" (options there go to ``create_engine``)."""
        if self.on_redis:
            return {"global_keyprefix": self.redis_prefix} if self.redis_prefix else {}
        if self.broker.startswith("sqla+sqlite"):
            return {"connect_args": {"timeout": 30}}
        return {}

    def open_registry(self) -> Registry:
        """The registry these settings name (its tables created if missing); close it when done."""
        from data_store.registry import Registry

        return Registry(self.registry_db, self.registry_artifacts_dir, schema=self.registry_schema or None)
