"""Hot swap on a running robot: latency from the rollout call to the robot running the new version, and
control ticks missed during the swap, on the simulated arm paced at 10 Hz.

    python benchmarks/serving_swap.py [--preset tiny|small] [--swaps 6] [--poll-s 0.2]

A real server process; in this process the robot agent: ``SimRobot(realtime=True)`` driven by the real
control loop (``Runtime``, wall-clock pacing at ``spec.fps`` = 10 Hz, a tick that ends after its deadline
counts as missed), a ``PolicySlot`` and a ``PolicySyncer`` thread polling the server every ``poll_s``.
Swaps alternate between rollouts of versions the robot has not seen (download, verify, load, health
probe) and rollbacks (still in memory). Latency is measured from just before the POST to the first
moment the slot runs the new version. Missed ticks: the loop's own count (``missed_deadlines``, a tick
that ended after its deadline) over the episodes that overlap a swap and over the others. Jitter, tick
by tick, from the times actions were sent (a subscriber): gaps of more than 1.5 ticks between two
actions, inside the swap windows (rollout call to swap + 1 s) or outside. A gap is not always a missed
deadline (a chunk boundary sends later within its tick than the ticks after it), so this is the
stricter, noisier figure.

With ``--beside trainer_worker_policy`` the same beside a world-model trainer process with the Celery worker's thread
policy (``benchmarks/contention.py``; ``trainer_defaults``: torch's defaults at normal priority).

Prints JSON lines ``{"name", "figure", "value", "unit", "machine", "config"}``.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from contention import TRAINERS, trainer_beside
from serving_common import percentile, start_server, tiny_artifact, upload

from data_store.measure import emit
from robot_agent.session import SessionConfig
from vla.threads import bound_threads


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tiny", choices=("tiny", "small"))
    p.add_argument("--swaps", type=int, default=6)
    p.add_argument("--poll-s", type=float, default=0.2)
    p.add_argument("--episode-steps", type=int, default=40)
    p.add_argument("--beside", default="none", choices=list(TRAINERS), help="A trainer process beside the robot.")
    p.add_argument("--robot-threads", type=int, default=SessionConfig.threads, help="The robot's policy threads.")
    args = p.parse_args()
    with trainer_beside(args.beside):
        swaps(args)


def swaps(args: argparse.Namespace) -> None:

    from robot_agent.loop import Runtime
    from robot_agent.robots.base import make_robot
    from robot_agent.slot import PolicySlot
    from robot_agent.sync import PolicySyncer, SyncConfig

    config: dict[str, Any] = {"preset": args.preset, "poll_s": args.poll_s, "fps": 10, "swaps": args.swaps,
                              "task": "drawer-close", "episode_steps": args.episode_steps,
                              "beside": args.beside, "robot_threads": args.robot_threads}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-swap-") as tmp:
        root = Path(tmp)
        server = start_server(root / "server")
        try:
            admin = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.tokens['admin']}"})
            n_versions = args.swaps // 2 + 1
            versions = []
            for i in range(n_versions):
                tiny_artifact(root / f"a{i}", i, args.preset)
                versions.append(upload(admin, root / f"a{i}"))
            robot = make_robot("sim", task="drawer-close", max_steps=args.episode_steps, realtime=True)
            robot.connect()
            admin.post("/robots", json={"robot_id": "bench-arm", "spec": robot.spec.to_json()}).raise_for_status()
            admin.post("/rollouts", json={"version": versions[0], "robots": ["bench-arm"]}).raise_for_status()
            sync = SyncConfig(server.url, "bench-arm", root / "cache", token=server.tokens["operator"],
                              poll_s=args.poll_s)  # fmt: skip
            syncer = PolicySyncer(None, robot.spec, sync)
            policy, version = syncer.bootstrap(60)
            bound_threads(args.robot_threads, import_torch=False)  # as AgentSession does (flywheel robot run --threads)
            slot = PolicySlot(policy, version)
            syncer.attach(slot)
            syncer.start()
            stop = threading.Event()
            runtime = Runtime(robot, slot, pace=True, stop_event=stop, stop_on_success=False)
            episodes: list[tuple[float, float, int, int]] = []  # (start, end, missed, ticks)
            sent: list[float] = []  # wall time of every action sent

            class Ticks:
                def on_episode_start(self, obs: object) -> None:
                    sent.append(float("nan"))  # no gap across the reset between episodes

                def on_step(self, obs: object, action: object, info: object) -> None:
                    sent.append(time.monotonic())

                def on_episode_end(self, result: object) -> None: ...

            runtime.subscribers.append(Ticks())

            latencies: dict[str, list[float]] = {"fresh": [], "cached": []}
            windows: list[tuple[float, float]] = []
            failure: list[str] = []

            def rollouts() -> None:
                """The operator's side, on its own thread (the loop keeps the main thread: EGL rendering)."""
                try:
                    time.sleep(2 * args.episode_steps / 10)  # baseline episodes first
                    nxt = 1
                    for i in range(args.swaps):
                        if i % 2 == 0:
                            kind, target = "fresh", versions[nxt]
                            path, body = "/rollouts", {"version": target, "robots": ["bench-arm"]}
                            nxt += 1
                        else:
                            kind, target = "cached", str(slot.previous_version)
                            path, body = "/rollback", {"robots": ["bench-arm"]}
                        t0 = time.monotonic()
                        admin.post(path, json=body).raise_for_status()
                        if not slot.wait_until_active(target, 60):
                            raise RuntimeError(f"swap to {target} did not happen in 60 s: {syncer.status}")
                        t1 = time.monotonic()
                        latencies[kind].append(t1 - t0)
                        windows.append((t0, t1))
                        time.sleep(args.episode_steps / 10 + 0.5)
                    time.sleep(2 * args.episode_steps / 10)
                except Exception as e:
                    failure.append(f"{type(e).__name__}: {e}")
                finally:
                    stop.set()

            operator = threading.Thread(target=rollouts, daemon=True)
            operator.start()
            seed = 0
            while not stop.is_set():
                t0 = time.monotonic()
                result = runtime.run_episode(seed=seed)
                if result.reason != "operator interrupt":  # the last one, cut short, is not counted
                    episodes.append((t0, time.monotonic(), result.missed_deadlines, result.steps))
                seed += 1
            operator.join(30)
            if failure:
                raise RuntimeError(failure[0])
            syncer.stop()
            robot.disconnect()
        finally:
            server.stop()

    for kind, values in latencies.items():
        what = "rollout (download, verify, load, probe)" if kind == "fresh" else "rollback (version still loaded)"
        emit("serving_swap", f"{kind} swap latency p50, {what}", round(percentile(values, 50), 3), "s", config,
             samples=len(values), max=round(max(values), 3))  # fmt: skip
    dt = 0.1
    inside = outside = ticks_inside = ticks_outside = 0
    for a, b in itertools.pairwise(sent):
        if a != a or b != b:  # NaN: an episode boundary
            continue
        missed = max(0, round((b - a) / dt) - 1) if b - a > 1.5 * dt else 0
        if any(w0 <= b <= w1 + 1.0 for w0, w1 in windows):
            inside, ticks_inside = inside + missed, ticks_inside + 1
        else:
            outside, ticks_outside = outside + missed, ticks_outside + 1
    emit("serving_swap", "action-send gaps over 1.5 ticks at 10 Hz inside swap windows", inside, "ticks",
         config, ticks=ticks_inside, windows=len(windows))  # fmt: skip
    emit("serving_swap", "action-send gaps over 1.5 ticks at 10 Hz outside swap windows", outside, "ticks", config,
         ticks=ticks_outside)  # fmt: skip
    during = [e for e in episodes if any(e[0] <= w1 and w0 <= e[1] for w0, w1 in windows)]
    others = [e for e in episodes if e not in during]
    for label, group in (("during swaps", during), ("without a swap", others)):
        ticks = sum(e[3] for e in group)
        emit("serving_swap", f"missed control ticks at 10 Hz, episodes {label}", sum(e[2] for e in group), "ticks",
             config, ticks=ticks, episodes=len(group), target=0)  # fmt: skip


if __name__ == "__main__":
    main()
