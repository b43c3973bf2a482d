"""Locks that hold across processes and machines: a Redis lock with a TTL on Redis, a file lock otherwise.

Two uses: the nightly trigger (two beat processes must never start two cycles) and a stage's lease
(a message delivered twice — a redelivery after a visibility timeout, a chain re-triggered by a
duplicate — must not run the same stage twice at once). A holder that dies loses the lock: the file
lock with its process (the kernel drops ``flock`` locks), the Redis lock when its TTL runs out, which
a live holder keeps renewing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from trainer.service.settings import ServiceSettings

REDIS_PREFIX = "flywheel:lock:"


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
def redis_lock(url: str, name: str, *, ttl_s: float, wait: bool = True, prefix: str = "") -> Iterator[bool]:
    """A Redis lock that expires ``ttl_s`` after its holder stops renewing it (renewed every ttl/3)."""
    import redis

    client = redis.Redis.from_url(url)
    lock = client.lock(prefix + REDIS_PREFIX + name, timeout=ttl_s, sleep=0.05, thread_local=False)
    acquired = bool(lock.acquire(blocking=wait))
    stop = threading.Event()
    renewer = threading.Thread(target=_renew, args=(lock, ttl_s, stop), daemon=True)
    if acquired:
        renewer.start()
    try:
        yield acquired
    finally:
        stop.set()
        if acquired:
            renewer.join()
            with contextlib.suppress(redis.exceptions.LockError):
                lock.release()
        client.close()


def _renew(lock: object, ttl_s: float, stop: threading.Event) -> None:
    while not stop.wait(ttl_s / 3):
        lock.reacquire()  # type: ignore[attr-defined]


@contextlib.contextmanager
def service_lock(settings: ServiceSettings, name: str, *, ttl_s: float, wait: bool = True) -> Iterator[bool]:
    """The lock that fits the deployment: Redis when the broker is Redis (several machines), else a file."""
    if settings.on_redis:
        with redis_lock(settings.broker, name, ttl_s=ttl_s, wait=wait, prefix=settings.redis_prefix) as acquired:
            yield acquired
    else:
        with file_lock(settings.root / "locks" / f"{name}.lock", wait=wait) as acquired:
            yield acquired
