"""A reader polling an episode while another process records it never sees a half-written step."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from episode_helpers import check_steps

from data_store.episodes import EpisodeStore

CHILD = Path(__file__).with_name("recorder_child.py")


def test_reader_sees_only_whole_steps(store_dir: Path) -> None:
    steps = 150
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(store_dir), "1", str(steps), "--depth", "--size", "32"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    episode_id = proc.stdout.readline().split()[1]  # "created ID"
    store = EpisodeStore(store_dir)
    reader = store.open(episode_id)
    lengths: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        reader.refresh()
        check_steps(reader)  # every frame visible is exactly what the writer wrote for its index
        lengths.append(len(reader))
        if reader.info.status != "recording":
            break
    proc.stdout.read()
    assert proc.wait(timeout=30) == 0
    assert reader.info.status == "complete" and len(reader) == steps
    assert lengths == sorted(lengths)  # the published length only grows
    partial = [n for n in lengths if 0 < n < steps]
    assert len(set(partial)) >= 3, f"the reader never overlapped the writer: {lengths}"
