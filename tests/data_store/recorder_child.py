"""A recording process for the crash-safety tests: records episodes of synthetic steps and reports
progress on stdout, so the test can ``kill -9`` it at a chosen point.

    python recorder_child.py STORE EPISODES STEPS [--pause-at EVENT] [--depth] [--size N] [--buffer-s S]

Lines printed (flushed): ``created ID``, ``step ID T`` (after ``append`` of step T returned: published, or
queued with ``--buffer-s``), ``finished ID``.
With ``--pause-at`` the process prints ``paused`` and blocks at that point:
``created`` (before the first frame), ``between`` (after an episode finished, before the next one),
``finish`` (inside ``finish``: the arrays are trimmed but the status is not yet written).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from episode_helpers import small_spec, step

from data_store.episodes import EpisodeStore


def pause() -> None:
    print("paused", flush=True)
    while True:
        time.sleep(60)


def pause_after_first_resize() -> None:
    """From now on the first array resize (the trim inside ``finish``) completes, then the process pauses."""
    import zarr

    resize = zarr.Array.resize

    def resize_then_pause(self: zarr.Array, shape: tuple[int, ...]) -> None:
        resize(self, shape)
        pause()

    zarr.Array.resize = resize_then_pause  # type: ignore[method-assign]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("store")
    p.add_argument("episodes", type=int)
    p.add_argument("steps", type=int)
    p.add_argument("--pause-at", default=None)
    p.add_argument("--depth", action="store_true")
    p.add_argument("--size", type=int, default=16)
    p.add_argument("--buffer-s", type=float, default=0.0)
    args = p.parse_args()
    spec = small_spec(depth=args.depth, size=args.size)
    store = EpisodeStore(args.store)
    for e in range(args.episodes):
        w = store.create(
            spec, task="drawer-close", instruction="close the drawer", meta={"n": e}, buffer_s=args.buffer_s
        )
        print(f"created {w.episode_id}", flush=True)
        if args.pause_at == "created":
            pause()
        for t in range(args.steps):
            w.append(*step(spec, t))
            print(f"step {w.episode_id} {t}", flush=True)
        if args.pause_at == "finish" and e == args.episodes - 1:
            pause_after_first_resize()
        w.finish(e % 2 == 0)
        print(f"finished {w.episode_id}", flush=True)
        if args.pause_at == "between" and e == args.episodes - 2:
            pause()


if __name__ == "__main__":
    main()
