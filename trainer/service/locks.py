"""Locks that hold across processes and machines: a Redis lock with a TTL on Redis, a file lock otherwise.

Two uses: the nightly trigger (two beat processes must never start two cycles) and a stage's lease
(a message delivered twice — a redelivery after a visibility timeout, a chain re-triggered by a
duplicate — must not run the same stage twice at once). A holder that dies loses the lock: the file
lock with its process (the kernel drops ``flock`` locks), the Redis lock when its TTL runs out, which
a live holder keeps renewing.

A Redis lock is a lease (``Lease``): the holder renews it every ttl/3 and rides out a broker that is down for
less than the TTL (it keeps trying); when the TTL runs out without a renewal, or another holder has it, the lease
is ``lost`` and the stage that held it stops at its next progress report (``progress.StageReporter``) instead of
running on unprotected beside whoever takes the lock next.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from trainer.service.settings import ServiceSettings

REDIS_PREFIX = "flywheel:lock:"
log = logging.getLogger("trainer.service.locks")


class LeaseLost(RuntimeError):
    """A stage stopped before it finished because its lease was lost (a broker outage): its checkpoints are kept and
    the run resumes from them, by a retry of the task or by beat's ``flywheel.recover``."""


@dataclass
class Lease:
    """A held (or not acquired) lock. ``lost`` is set when a Redis lease ran out or went to another holder."""

    acquired: bool
    name: str = ""
    lost: threading.Event = field(default_factory=threading.Event)

    def __bool__(self) -> bool:
        return self.acquired


@contextlib.contextmanager
def file_lock(path: Path, *, wait: bool = True, timeout_s: float | None = None) -> Iterator[bool]:
    """``flock`` on ``path``; yields whether it was acquired (always True when ``wait`` and no timeout)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        acquired = _flock(fd, wait=wait, timeout_s=timeout_s)
        try:
            yield acquired
        finally:
            if acquired:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _flock(fd: int, *, wait: bool, timeout_s: float | None) -> bool:
    if wait and timeout_s is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return True
    deadline = time.monotonic() + (timeout_s or 0.0)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if not wait or time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


@contextlib.contextmanager
def redis_lock(url: str, name: str, *, ttl_s: float, wait: bool = True, prefix: str = "") -> Iterator[Lease]:
    """A Redis lock that expires ``ttl_s`` after its holder stops renewing it (renewed every ttl/3)."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=max(1.0, ttl_s / 6), socket_connect_timeout=max(1.0, ttl_s / 6))
    lock = client.lock(prefix + REDIS_PREFIX + name, timeout=ttl_s, sleep=0.05, thread_local=False)
    lease = Lease(bool(lock.acquire(blocking=wait)), name)
    stop = threading.Event()
    renewer = threading.Thread(target=_renew, args=(lock, ttl_s, stop, lease), daemon=True)
    if lease.acquired:
        renewer.start()
    try:
        yield lease
    finally:
        stop.set()
        if lease.acquired:
            renewer.join()
            with contextlib.suppress(redis.exceptions.RedisError):
                lock.release()
        client.close()


def _renew(lock: object, ttl_s: float, stop: threading.Event, lease: Lease) -> None:
    """Renew every ttl/3; through a broker outage keep trying (every second) until the lease would have expired."""
    import redis

    renewed = time.monotonic()
    wait = ttl_s / 3
    while not stop.wait(wait):
        try:
            lock.reacquire()  # type: ignore[attr-defined]
            renewed, wait = time.monotonic(), ttl_s / 3
        except redis.exceptions.LockError:  # expired and gone, or another holder's now
            lease.lost.set()
            log.warning("lease %s: lost (another holder has it, or it expired)", lease.name)
            return
        except redis.exceptions.RedisError as e:  # the broker is down: it may come back before the TTL runs out
            if time.monotonic() - renewed >= ttl_s:
                lease.lost.set()
                log.warning("lease %s: lost: not renewed for %.0f s (%s)", lease.name, ttl_s, e)
                return
            wait = min(1.0, ttl_s / 3)


@contextlib.contextmanager
def service_lock(settings: ServiceSettings, name: str, *, ttl_s: float, wait: bool = True) -> Iterator[Lease]:
    """The lock that fits the deployment: Redis when the broker is Redis (several machines), else a file (whose
    lease is never lost: the kernel holds it for the process)."""
    if settings.on_redis:
        with redis_lock(settings.broker, name, ttl_s=ttl_s, wait=wait, prefix=settings.redis_prefix) as lease:
            yield lease
    else:
        with file_lock(settings.root / "locks" / f"{name}.lock", wait=wait) as acquired:
            yield Lease(acquired, name)
