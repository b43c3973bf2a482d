"""Which recipe settings improve the policy at the deployment temperature? One cycle's GRPO per variant, from one
world model, reward model and store, each candidate's outcome on the 100 evaluation scenes at the deployment and
the sampling temperature, and the base at several temperatures. Prints JSON lines.

    python benchmarks/grpo_temperature_sweep.py --run bench_paper/drawer-close/seed0 --store bench_paper/store \\
        --policy bench_paper/base_policy --task drawer-close base T13: T10:grpo.temperature=1.0 \\
        T07s1:grpo.temperature=0.7,seed=1 D1:deploy_members=1

A variant is ``NAME:KEY=VALUE,...`` (recipe overrides, ``grpo.X`` for GRPO settings); ``base`` evaluates the base at
0, 0.5, 1.0 and 1.3. Every step is the cycle's own (``trainer/cycle.py``) with the ``default`` recipe and the given
overrides; GRPO starts from every first frame of the task's episodes of robot ``--robot`` (``base``) in the store.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


def parse(spec: str) -> tuple[str, dict[str, Any]]:
    name, _, rest = spec.partition(":")
    overrides: dict[str, Any] = {}
    grpo: dict[str, Any] = {}
    for pair in filter(None, rest.split(",")):
        key, _, value = pair.partition("=")
        parsed = json.loads(value)
        if key.startswith("grpo."):
            grpo[key[5:]] = parsed
        else:
            overrides[key] = parsed
    if grpo:
        overrides["grpo"] = grpo
    return name, overrides


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, required=True, help="A folder with world_model/ and reward_model/.")
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--policy", type=Path, required=True, help="The base policy artifact.")
    ap.add_argument("--task", default="drawer-close")
    ap.add_argument("--scenes", type=int, default=100)
    ap.add_argument("--robot", default="base", help="Robot id of the episodes GRPO starts from (the demo's: sim-0).")
    ap.add_argument("variants", nargs="+")
    args = ap.parse_args()

    from vla.threads import bound_threads

    bound_threads(1)
    from data_store.episodes import EpisodeStore
    from data_store.measure import machine
    from sim.tasks import resolve_task
    from trainer.cycle import imagination_for, improve
    from trainer.evaluate import EVAL_SEED, scene_outcomes
    from trainer.recipe import recipe
    from trainer.reward_model import FrameRewardModel
    from trainer.sim_grpo import ArmPool
    from trainer.world_model import PixelWorldModel
    from vla.artifact import load_artifact

    info = resolve_task(args.task)
    store = EpisodeStore(args.store)
    wm = PixelWorldModel.load(args.run / "world_model", seed=0)
    rm = FrameRewardModel.load(args.run / "reward_model")
    scenes = range(EVAL_SEED, EVAL_SEED + args.scenes)

    def emit(**row: Any) -> None:
        print(json.dumps({**row, "machine": machine()}), flush=True)

    with ArmPool() as pool:

        def evaluate(policy: Any, name: str, temps: list[float], overrides: dict[str, Any]) -> None:
            for t in temps:
                o = scene_outcomes(policy, info.name, scenes, t, pool=pool)
                bits = "".join("1" if x else "0" for x in o)
                emit(
                    name=f"sweep/{info.name}/{name}",
                    figure="success_rate",
                    value=float(o.mean()),
                    unit="fraction",
                    temperature=t,
                    outcomes=bits,
                    config=overrides,
                )

        for spec in args.variants:
            name, overrides = parse(spec)
            if name == "base":
                evaluate(load_artifact(args.policy), "base", [0.0, 0.5, 1.0, 1.3], {})
                continue
            r = recipe("default", **overrides)
            ids = [i.episode_id for i in store.episodes(task=info.name, robot_id=args.robot, status="complete")]
            imagination = imagination_for(store, info.name, wm, rm, r, info.max_steps, info.camera, ids)
            policy = load_artifact(args.policy)
            t0 = time.perf_counter()
            history = improve(policy, imagination, r)
            emit(
                name=f"sweep/{info.name}/{name}/grpo",
                figure="wall_time",
                value=time.perf_counter() - t0,
                unit="s",
                imagined_success=[round(h.get("imagined_success", float("nan")), 3) for h in history],
                filtered_frac=[round(h.get("filtered_frac", float("nan")), 3) for h in history],
                config=overrides,
            )
            evaluate(policy, name, sorted({r.deploy_temperature, r.grpo.temperature}), overrides)


if __name__ == "__main__":
    main()
