"""The Celery app of the trainer service: ``celery -A trainer.service.celery_app worker``.

Broker and result backend come from ``ServiceSettings`` (``FLYWHEEL_BROKER_URL``, ...): Redis in
production, SQLite under the data dir when nothing is set. The settings that make hours-long GPU
jobs safe:

- ``task_acks_late`` + ``task_reject_on_worker_lost``: a message is acknowledged when its task has
  finished, not when it starts, so a worker that dies mid-training leaves it to be delivered again.
- Redis ``visibility_timeout`` longer than the longest stage: an unacknowledged message comes back
  after this long (a killed worker's task resumes then); shorter, and a stage still running is
  delivered twice (the stage lease in ``execute.py`` makes that safe, but it is wasted work).
- ``worker_prefetch_multiplier=1``: a worker holds one message at a time; the rest stay in the
  queue for the other workers.
- Queues ``gpu`` and ``cpu``: each stage names its queue; ``flywheel worker -Q gpu`` runs with the
  solo pool (``flywheel worker`` never forks after CUDA is initialised).

The app imports no task module: ``include`` names them (``tasks.py``: a run's tasks; ``schedule.py``: the
nightly task), and a worker imports them when it starts. They import the app, never the other way.
"""

from __future__ import annotations

from celery import Celery, signals
from celery.schedules import crontab
from kombu import Exchange, Queue

from data_store.jobs import CYCLE_TASK, QUEUES, SNAPSHOT_TASK
from trainer.service.locks import file_lock
from trainer.service.settings import ServiceSettings, load_settings

WEEK_S = 7 * 24 * 3600
TASK_MODULES = ["trainer.service.tasks", "trainer.service.schedule"]  # imported by a worker as it starts


def create_app(settings: ServiceSettings | None = None) -> Celery:
    settings = settings or load_settings()
    app = Celery("flywheel", broker=settings.broker, backend=settings.backend, include=TASK_MODULES)
    # What every client of the broker needs (the Redis key prefix; SQLite's wait for a writer, which keeps Kombu's
    # 1 s polling interval: about 1 s a round trip, nothing next to a stage), then what only a worker needs.
    transport = settings.broker_transport()
    backend_transport: dict[str, object] = {}
    if settings.on_redis:
        transport |= {
            "visibility_timeout": settings.visibility_timeout_s,
            "unacked_restore_interval": settings.restore_interval_s,
            "unacked_restore_throttle": 1,
        }
        backend_transport = {"visibility_timeout": settings.visibility_timeout_s}
        if settings.redis_prefix:
            backend_transport["global_keyprefix"] = settings.redis_prefix
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_track_started=True,
        result_extended=True,
        result_expires=WEEK_S,
        broker_transport_options=transport,
        result_backend_transport_options=backend_transport,
        broker_connection_retry_on_startup=True,
        task_default_queue="cpu",
        task_queues=tuple(Queue(q, Exchange(q), routing_key=q) for q in QUEUES),
        task_routes={name: {"queue": "cpu"} for name in (SNAPSHOT_TASK, "flywheel.nightly", CYCLE_TASK)},
        worker_hijack_root_logger=False,
        database_engine_options={"connect_args": {"timeout": 30}} if settings.backend.startswith("db+sqlite") else {},
    )
    configure_beat(app, settings)
    return app


def configure_beat(app: Celery, settings: ServiceSettings) -> None:
    """The beat schedule from the settings; local time unless ``FLYWHEEL_TIMEZONE`` names a zone."""
    if settings.timezone:
        app.conf.timezone = settings.timezone
    else:
        app.conf.enable_utc = False  # Celery then reads the clock in the machine's local time
    app.conf.beat_schedule = {
        "nightly-cycle": {
            "task": "flywheel.nightly",
            "schedule": crontab(hour=settings.nightly_hour, minute=settings.nightly_minute),
            "options": {"queue": "cpu"},
        },
        "recover-interrupted": {  # runs a broker outage interrupted resume once it is back
            "task": "flywheel.recover",
            "schedule": settings.recover_every_s,
            "options": {"queue": "cpu"},
        },
    }


def ensure_dirs(settings: ServiceSettings, celery: Celery | None = None) -> None:
    """The folder of the SQLite broker and backend, and the broker's queues; made when a process first needs
    them, not on import.

    On the SQLite broker the queues are declared here, one process at a time: kombu's SQLAlchemy transport
    declares a queue by looking it up and inserting it when missing, so a worker starting while a producer
    publishes could both insert ``cpu`` (``UNIQUE constraint failed: kombu_queue.name``), and the loser's
    worker stalled with the run left queued. Declared once under a file lock, every later declare finds
    the row."""
    if settings.broker.startswith("sqla+sqlite") or settings.backend.startswith("db+sqlite"):
        (settings.root / "celery").mkdir(parents=True, exist_ok=True)
    if settings.broker.startswith("sqla+sqlite"):
        declare_queues(celery or create_app(settings), settings)


def declare_queues(celery: Celery, settings: ServiceSettings) -> None:
    """Declare the app's queues on its broker, under a file lock beside the SQLite broker."""
    with file_lock(settings.root / "celery" / "declare.lock"), celery.connection_for_write() as conn:
        channel = conn.default_channel
        for queue in celery.conf.task_queues or ():
            queue.bind(channel).declare()


@signals.worker_process_init.connect
@signals.worker_init.connect
def _bound_threads(sender: object = None, **_: object) -> None:
    """A worker trains below a robot's priority, with at most ``FLYWHEEL_WORKER_THREADS`` (0: auto) threads."""
    from vla.threads import bound_threads

    bound_threads(load_settings().worker_threads, background=True)


@signals.worker_init.connect
@signals.beat_init.connect
def _make_dirs(sender: object = None, **_: object) -> None:
    celery = getattr(sender, "app", None)
    ensure_dirs(load_settings(), celery if isinstance(celery, Celery) else None)


app = create_app()
