"""Where the trainer service finds its broker, its result backend, its data and its schedule.

Every field reads ``FLYWHEEL_<NAME>`` from the environment (pydantic-settings). With nothing set, the
service needs no server at all: Celery's SQLAlchemy transport on a SQLite file is the broker and a
SQLite database is the result backend, both under ``FLYWHEEL_DATA_DIR`` (0.5–0.7 s a round trip across
processes, measured on our 2-core VM, which is nothing next to a training stage). Production sets
``FLYWHEEL_BROKER_URL=redis://host:6379/0`` (0.07 s a round trip) and, usually, the same URL for the
result backend.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from data_store.settings import FlywheelSettings

DAY_S = 24 * 3600


class ServiceSettings(FlywheelSettings):
    """The shared settings (data folder, registry) and the service's own: runs, locks and the embedded broker
    live under ``DATA_DIR``."""

    store: str = Field(default="", description="The episode store (a path); default: DATA_DIR/episodes.")
    result_backend: str = Field(default="", description="Celery result backend; empty: db+sqlite under DATA_DIR.")
    # A message a worker has taken but not acknowledged comes back to the queue after this long
    # (Redis). It must exceed the longest stage, or a stage still running is delivered a second time
    # (harmless, see execute.py, but wasted work). A killed worker's task waits this long to resume.
    visibility_timeout_s: int = Field(default=DAY_S // 2, ge=1)
    restore_interval_s: int = Field(
        default=10, ge=1, description="How often a worker looks for expired messages (Redis)."
    )
    stage_lease_s: int = Field(default=60, ge=2, description="A running stage's lease; renewed while it runs.")
    recover_every_s: int = Field(
        default=300, ge=10, description="How often beat resumes runs a broker outage interrupted."
    )
    max_recoveries: int = Field(default=3, ge=0, description="Resumes of one run after outages before it fails.")
    worker_threads: int = Field(
        default=0, ge=0, description="A worker's torch/BLAS threads (0: one on a busy machine, else its cores)."
    )
    stage_table: str = Field(
        default="trainer.service.stages:STAGES", description="module:attribute of the stages to run."
    )
    nightly_hour: int = Field(default=2, ge=0, le=23, description="Local time of the nightly cycle.")
    nightly_minute: int = Field(default=0, ge=0, le=59)
    min_new_episodes: int = Field(
        default=20, ge=1, description="The nightly cycle starts only after this many new ones."
    )
    timezone: str = Field(default="", description="Beat's time zone; empty: the machine's local time.")
    cycle_config: str = Field(
        default="", description="JSON file with the nightly cycle's CycleConfig (policy, task, ...)."
    )

    @property
    def runs_dir(self) -> Path:
        """One folder per run id: the run record and each stage's progress."""
        return self.root / "runs"

    @property
    def work_dir(self) -> Path:
        """One folder per idempotency key: each stage's outputs and checkpoints."""
        return self.root / "work"

    @property
    def store_path(self) -> str:
        return self.store or str(self.root / "episodes")

    @property
    def backend(self) -> str:
        if self.result_backend:
            return self.result_backend
        if self.broker_url.startswith(("redis://", "rediss://")):
            return self.broker_url
        return f"db+sqlite:///{self.root / 'celery' / 'results.sqlite'}"


def load_settings() -> ServiceSettings:
    """Read the environment now (tests and the CLI change it between calls)."""
    return ServiceSettings()
