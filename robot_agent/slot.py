"""``PolicySlot``: the policy the robot runs, swapped atomically at a chunk boundary, with instant rollback.

API (thread-safe; the control loop is one thread, the syncer or an operator another):

- ``PolicySlot(policy, version)``: the running policy.
- ``slot.policy`` / ``slot.version``: what runs now (the active pair, read under the lock).
- ``slot.swap(policy, version)``: stage a new policy. While an episode runs it takes effect at the next
  chunk boundary (the loop never mixes two policies inside one chunk); while no episode runs it takes
  effect at once. Staging again before the boundary replaces the staged one.
- ``slot.rollback()``: stage the previous policy (kept in memory, so no download or warm-up) and
  return its version; ``ValueError`` when there is none.
- ``slot.pending_version``: the staged version, or None.
- ``slot.wait_until_active(version, timeout_s)``: block until ``version`` runs (for a syncer that reports
  when a swap really took effect).

The control loop's side: ``with slot.running():`` around an episode, and ``slot.at_chunk_boundary()``
before it asks for each chunk; it returns the ``(policy, version)`` pair to use for that chunk.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from vla.protocol import Policy


class PolicySlot:
    """Holds ``(policy, version)`` behind a lock; see the module docstring for the API."""

    def __init__(self, policy: Policy, version: str = "unknown") -> None:
        self._cond = threading.Condition(threading.Lock())
        self._active: tuple[Policy, str] = (policy, str(version))
        self._pending: tuple[Policy, str] | None = None
        self._previous: tuple[Policy, str] | None = None
        self._running = 0
        self.swaps = 0  # how many swaps took effect

    @property
    def policy(self) -> Policy:
        with self._cond:
            return self._active[0]

    @property
    def version(self) -> str:
        with self._cond:
            return self._active[1]

    @property
    def pending_version(self) -> str | None:
        with self._cond:
            return self._pending[1] if self._pending is not None else None

    @property
    def previous_version(self) -> str | None:
        with self._cond:
            return self._previous[1] if self._previous is not None else None

    def swap(self, policy: Policy, version: str) -> None:
        """Stage ``policy``; it runs from the next chunk boundary (at once when no episode runs)."""
        with self._cond:
            self._pending = (policy, str(version))
            if self._running == 0:
                self._take_pending()

    def rollback(self) -> str:
        """Stage the previous policy (instant: it is still in memory). Returns its version."""
        with self._cond:
            if self._previous is None:
                raise ValueError("no previous policy to roll back to")
            self._pending = self._previous
            version = self._previous[1]
            if self._running == 0:
                self._take_pending()
            return version

    def at_chunk_boundary(self) -> tuple[Policy, str]:
        """Called by the loop before each chunk: apply a staged swap, return the pair to use."""
        with self._cond:
            if self._pending is not None:
                self._take_pending()
            return self._active

    @contextmanager
    def running(self) -> Iterator[PolicySlot]:
        """Marks an episode in progress: swaps then wait for a chunk boundary."""
        with self._cond:
            self._running += 1
        try:
            yield self
        finally:
            with self._cond:
                self._running -= 1

    def wait_until_active(self, version: str, timeout_s: float) -> bool:
        """Block until ``version`` is the running one; False after ``timeout_s``."""
        with self._cond:
            return self._cond.wait_for(lambda: self._active[1] == version, timeout=timeout_s)

    def _take_pending(self) -> None:  # holds the lock
        assert self._pending is not None
        if self._pending[0] is not self._active[0] or self._pending[1] != self._active[1]:
            self._previous = self._active
            self._active = self._pending
            self.swaps += 1
        self._pending = None
        self._cond.notify_all()
