"""``kill -9`` of a real recording process at several points: every earlier episode and every published
step stays readable, and the interrupted episode is reported ``aborted``, not corrupt."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from episode_helpers import check_steps

from data_store.episodes import EpisodeStore

CHILD = Path(__file__).with_name("recorder_child.py")
REPO = Path(__file__).resolve().parents[2]


class Recorder:
    """The child process and what it has reported so far."""

    def __init__(self, store: Path, episodes: int, steps: int, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(store), str(episodes), str(steps), *extra],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        self.created: list[str] = []
        self.finished: list[str] = []
        self.published: dict[str, int] = {}  # episode id -> steps reported published

    def read_until(self, done: object) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            kind, *rest = line.split()
            if kind == "created":
                self.created.append(rest[0])
                self.published[rest[0]] = 0
            elif kind == "step":
                self.published[rest[0]] = int(rest[1]) + 1
            elif kind == "finished":
                self.finished.append(rest[0])
            if callable(done) and done(kind, rest):
                return
        raise AssertionError(f"recorder exited ({self.proc.wait()}) before the kill point")

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        assert self.proc.wait(timeout=30) == -signal.SIGKILL


def check_store(store_dir: Path, rec: Recorder, steps: int, may_lose: int = 1) -> EpisodeStore:
    """The invariants after a crash, checked in this (the test) process."""
    store = EpisodeStore(store_dir)  # opening recovers: the dead writer's episode becomes aborted
    assert store.ids() == sorted(rec.created)
    assert [i.episode_id for i in store.episodes()] == sorted(rec.created)
    for episode_id in rec.created:
        info = store.info(episode_id)
        reader = store.open(episode_id)
        check_steps(reader)  # every published step is whole
        if episode_id in rec.finished:
            assert info.status == "complete" and info.length == steps
        else:
            assert info.status == "aborted", info
            assert info.reason is not None and info.reason.startswith("recorder died")
            # lost: at most the step being written when the kill landed (+ the queue when buffered; 1 s bound)
            assert rec.published[episode_id] - may_lose <= info.length <= rec.published[episode_id] + 1
    # the catalog agrees with the store, and a rebuild from the store alone gives the same records
    before = {i.episode_id: i for i in store.episodes()}
    assert store.rebuild_catalog() == len(rec.created)
    assert {i.episode_id: i for i in store.episodes()} == before
    return store


@pytest.mark.parametrize("point", ["created", "between", "finish"])
def test_kill_at_a_fixed_point(store_dir: Path, point: str) -> None:
    steps = 30
    rec = Recorder(store_dir, 3, steps, "--pause-at", point, "--depth")
    rec.read_until(lambda kind, rest: kind == "paused")
    rec.kill()
    store = check_store(store_dir, rec, steps)
    aborted = [i.episode_id for i in store.episodes(status="aborted")]
    expected = {"created": 1, "between": 0, "finish": 1}[point]
    assert len(aborted) == expected
    if point == "finish":  # the arrays were trimmed already; the published steps all survive
        assert store.info(aborted[0]).length == steps


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kill_mid_episode_while_writing(store_dir: Path, seed: int) -> None:
    """The recorder runs flat out; the kill lands wherever it happens to be (chunk write, resize, publish)."""
    steps = 90  # crosses a growth block (64 steps), so some kills land near a resize
    kill_after = random.Random(seed).randrange(5, 80)
    rec = Recorder(store_dir, 2, steps, "--depth")
    rec.read_until(lambda kind, rest: kind == "step" and len(rec.created) == 2 and int(rest[1]) >= kill_after)
    rec.kill()
    store = check_store(store_dir, rec, steps)
    interrupted = rec.created[-1]
    info = store.info(interrupted)
    assert info.status == "aborted" and info.length >= kill_after
    # the aborted episode stays usable: it can be labelled and read like any other
    store.label(interrupted, False)
    assert store.info(interrupted).success == "false"


def test_live_writer_is_not_aborted(store_dir: Path) -> None:
    """Opening the store while another process records must not abort its episode."""
    rec = Recorder(store_dir, 1, 10, "--pause-at", "created")
    try:
        rec.read_until(lambda kind, rest: kind == "paused")
        store = EpisodeStore(store_dir)
        assert store.info(rec.created[0]).status == "recording"
        assert store.recover() == []
    finally:
        rec.kill()
    after = EpisodeStore(store_dir, recover=False)
    assert after.recover() == rec.created  # now it is gone: marked aborted, once
    assert after.recover() == []
    assert after.info(rec.created[0]).status == "aborted"


def test_kill_buffered_writer_loses_at_most_its_buffer(store_dir: Path) -> None:
    """``buffer_s=1``: append returns once queued; a kill loses at most 1 s of steps (fps 10: 10 steps)."""
    steps = 90
    rec = Recorder(store_dir, 2, steps, "--depth", "--buffer-s", "1.0")
    rec.read_until(lambda kind, rest: kind == "step" and len(rec.created) == 2 and int(rest[1]) >= 40)
    rec.kill()
    store = check_store(store_dir, rec, steps, may_lose=10 + 1)
    assert store.info(rec.created[0]).status == "complete"  # finish flushed the queue of the first episode
