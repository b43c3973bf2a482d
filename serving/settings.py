"""The server's settings, from ``FLYWHEEL_<NAME>`` environment variables (pydantic-settings).

The data folder and the registry come from ``data_store.settings.FlywheelSettings``, the base the trainer service's
settings extend too, so one environment configures both: ``FLYWHEEL_DATA_DIR``, ``FLYWHEEL_REGISTRY_URL``,
``FLYWHEEL_REGISTRY_SCHEMA``, ``FLYWHEEL_REGISTRY_ARTIFACTS``.
"""

from __future__ import annotations

from pydantic import Field

from data_store.settings import FlywheelSettings


class Settings(FlywheelSettings):
    auth: bool = Field(default=True, description="Require API tokens. Off: every caller is an admin (local demo).")
    heartbeat_stale_s: float = Field(default=15.0, gt=0, description="A robot silent this long shows as stale.")
    max_upload_bytes: int = Field(default=2 << 30, gt=0, description="Largest artifact tarball accepted.")
    max_json_bytes: int = Field(default=1 << 20, gt=0, description="Largest JSON request body accepted (413 past).")
    max_body_bytes: int = Field(
        default=64 << 20, gt=0, description="Largest other request body (msgpack observations for inference)."
    )
    inference_cache: int = Field(default=3, ge=1, description="Policies kept loaded for remote inference.")
