"""Does a longer-trained world model tell GRPO what the arm would? Action-replay agreement (``trainer/agreement.py``)
of one cycle's models, then of its world model trained on for more steps, block by block, each with the reward
model refitted on it as the cycle fits one (``trainer.cycle.fit_reward_model_step``).

    python benchmarks/agreement_training.py flywheel_data/demo --block 3000 --blocks 3 --out runs/agreement_training

The cycle is the latest run in the demo's folder (its snapshot, world model, reward model); the policy is the
demo's base (the parent GRPO starts from). Every block continues from the previous one with the cycle's own refit
step (``fit_world_model_step`` with ``init``: a fresh warm-up and cosine schedule of ``--block`` steps). Figures as
JSON lines (``agreement/<task>/<kind>``), each with ``world_model_steps`` in its config.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


def latest_cycle(demo: Path) -> tuple[Path, tuple[str, ...]]:
    """The work folder of the demo's latest cycle and its snapshot's episode ids."""
    snapshots = sorted((demo / "work").glob("*/snapshot.json"), key=lambda p: p.stat().st_mtime)
    if not snapshots:
        raise SystemExit(f"no cycle in {demo}/work: run `bash scripts/demo.sh` first")
    snap = json.loads(snapshots[-1].read_text())["snapshot"]
    return snapshots[-1].parent, tuple(str(e) for e, _ in snap["episodes"])


def model_dir(folder: Path) -> Path:
    """The saved model inside a stage's or a fit's output folder."""
    return next(p.parent for p in sorted(folder.glob("**/manifest.json")) if "checkpoint" not in p.parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("demo", type=Path, help="a demo's folder (flywheel_data/demo)")
    ap.add_argument("--block", type=int, default=3000, help="world-model steps per block")
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--starts", type=int, default=16, help="starts of each kind")
    ap.add_argument("--out", type=Path, default=Path("runs/agreement_training"))
    args = ap.parse_args()

    from data_store.episodes import EpisodeStore
    from data_store.measure import emit
    from trainer.bench.agreement import AgreementConfig, run_agreement
    from trainer.cycle import episodes_of, fit_reward_model_step, fit_world_model_step
    from trainer.recipe import recipe
    from trainer.world_model import load_world_model
    from vla.threads import bound_threads

    bound_threads(0)
    work, ids = latest_cycle(args.demo)
    cfg_json = json.loads((work / "snapshot.json").read_text())["config"]
    store_dir = args.demo / "episodes"
    store = EpisodeStore(store_dir, recover=False)
    r = recipe(cfg_json.get("recipe", "default"))
    wm_dir, rm_dir = model_dir(work / "world_model" / "out"), model_dir(work / "reward_model" / "out")
    steps = r.world_model_steps
    block = recipe(cfg_json.get("recipe", "default"), refit_world_model_steps=args.block)

    def measure(wm: Path, rm: Path, extra: dict[str, Any]) -> None:
        cfg = AgreementConfig(str(store_dir), str(args.demo / "policies" / "base"), str(wm), str(rm),
                              task=cfg_json["task"], starts=args.starts, episode_ids=ids)  # fmt: skip
        run_agreement(cfg, lambda n, f, v, u, c: emit(n, f, v, u, {**c, **extra}))

    measure(wm_dir, rm_dir, {"world_model_steps": steps})
    episodes = episodes_of(store, ids)
    for b in range(1, args.blocks + 1):
        out = args.out / f"plus{b * args.block}"
        t = time.perf_counter()
        fit_world_model_step(block, episodes, out / "world_model", init=str(wm_dir))
        wm_dir, steps = model_dir(out / "world_model"), steps + args.block
        fit_reward_model_step(r, episodes, load_world_model(wm_dir), out / "reward_model")
        rm_dir = model_dir(out / "reward_model")
        measure(wm_dir, rm_dir, {"world_model_steps": steps, "train_s": round(time.perf_counter() - t, 1)})


if __name__ == "__main__":
    main()
