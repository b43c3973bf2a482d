"""What every component of one flywheel reads from the environment: where its data and its registry are.

``FLYWHEEL_<NAME>`` variables (pydantic-settings). The server (``serving.settings.Settings``) and the trainer
service (``trainer.service.settings.ServiceSettings``) both extend this base, so one environment points both at
the same registry: the same database, the same PostgreSQL schema and the same artifact folder. (When the trainer
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

    @cached_property
    def root(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def registry_db(self) -> str:
        return self.registry_url or f"sqlite:///{self.root / 'registry' / 'registry.db'}"

    @property
    def registry_artifacts_dir(self) -> Path:
        return Path(self.registry_artifacts) if self.registry_artifacts else self.root / "registry" / "artifacts"

    def open_registry(self) -> Registry:
        """The registry these settings name (its tables created if missing); close it when done."""
        from data_store.registry import Registry

        return Registry(self.registry_db, self.registry_artifacts_dir, schema=self.registry_schema or None)
