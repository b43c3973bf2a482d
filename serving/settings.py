"""The server's settings, from ``FLYWHEEL_<NAME>`` environment variables (pydantic-settings).

The names match the trainer service's (``trainer/service/settings.py``) where they mean the same thing,
so one environment configures both: ``FLYWHEEL_DATA_DIR``, ``FLYWHEEL_REGISTRY_URL``,
``FLYWHEEL_REGISTRY_ARTIFACTS``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLYWHEEL_", extra="ignore", frozen=True)

    data_dir: Path = Field(default=Path("flywheel_data"), description="Registry database and artifacts by default.")
    registry_url: str = Field(default="", description="SQLAlchemy URL; empty: SQLite under DATA_DIR/registry.")
    registry_schema: str = Field(default="", description="PostgreSQL schema for the registry's tables.")
    registry_artifacts: str = Field(default="", description="Artifact folder; empty: DATA_DIR/registry/artifacts.")
    auth: bool = Field(default=True, description="Require API tokens. Off: every caller is an admin (local demo).")
    heartbeat_stale_s: float = Field(default=15.0, gt=0, description="A robot silent this long shows as stale.")
    max_upload_bytes: int = Field(default=2 << 30, gt=0, description="Largest artifact tarball accepted.")
    max_json_bytes: int = Field(default=1 << 20, gt=0, description="Largest JSON request body accepted (413 past).")
    max_body_bytes: int = Field(
        default=64 << 20, gt=0, description="Largest other request body (msgpack observations for inference)."
    )
    inference_cache: int = Field(default=3, ge=1, description="Policies kept loaded for remote inference.")

    @property
    def registry_db(self) -> str:
        return self.registry_url or f"sqlite:///{self.data_dir.expanduser().resolve() / 'registry' / 'registry.db'}"

    @property
    def registry_artifacts_dir(self) -> Path:
        if self.registry_artifacts:
            return Path(self.registry_artifacts)
        return self.data_dir.expanduser().resolve() / "registry" / "artifacts"
