"""How much does one flywheel cycle's outcome depend on its seed? The product's cycle (``run_cycle_inline``, the
demo's configuration) on one demo's recorded data, once per seed: the judge's verdict and figures at the
deployment temperature, as JSON lines, then a summary line (promotion rate, mean gain, the spread).

    python benchmarks/cycle_seeds.py flywheel_data/demo --seeds 1,2,3 --out runs/cycle_seeds

The data is the demo's cycle data only: the scripted demonstrations and the base's episodes, copied into a store of
its own (the episodes the robot ran after a rollout are left out), so every seed learns from what the demo's
cycle learned from. The seed moves the world model's and the reward model's initialisation and batches, the judge's
hold-out split, and GRPO's draws; the base, the data and the validation scenes stay.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any


def demo_config(demo: Path) -> Any:
    """The settings of the demo that made ``demo`` (its ``demo.json``) that its cycle takes."""
    from flywheel.demo import MARKER, DemoConfig

    saved = json.loads((demo / MARKER).read_text())
    return DemoConfig(
        out=demo,
        task=saved["task"],
        recipe=saved["recipe"],
        judge_scenes=int(saved["judge_scenes"]),
        base_episodes=int(saved["base_episodes"]),
    )


def cycle_store(demo: Any, out: Path) -> tuple[Path, Path]:
    """A copy of the demo's store holding its cycle's episodes only, and the base policy."""
    from data_store.episodes import EpisodeStore
    from vla.manifest import read_manifest

    base = demo.out / "policies" / "base"
    base_version = read_manifest(base)["version"]
    source = EpisodeStore(demo.out / "episodes", create=False)
    done = sorted(source.episodes(status="complete"), key=lambda i: i.started_at)
    # the demonstrations and the base's first P episodes: the robot's episodes after the rollout call are not data
    keep = [i.episode_id for i in done if i.policy_version == "scripted"]
    keep += [i.episode_id for i in done if i.policy_version == base_version][: demo.base_episodes]
    target = out / "store"
    if not target.is_dir():
        target.mkdir(parents=True)
        for episode_id in keep:
            shutil.copytree(source.root / episode_id, target / episode_id)
        EpisodeStore(target).rebuild_catalog()
    return target, base


def run_seed(demo: Any, store: Path, base: Path, seed: int, out: Path) -> dict[str, Any]:
    from flywheel.demo import cycle_config
    from trainer.service.pipeline import run_cycle_inline
    from trainer.service.settings import ServiceSettings

    settings = ServiceSettings(data_dir=out / f"seed{seed}", store=str(store))
    start = time.time()
    record = run_cycle_inline(cycle_config(demo, base, seed=seed), settings, publish=lambda meta: None)
    metrics = dict((((record.get("results") or {}).get("evaluate") or {}).get("metrics")) or {})
    grpo = [p.get("metrics") or {} for p in record.get("progress", []) if p.get("stage") == "grpo"]
    return {
        "seed": seed,
        "promoted": bool(metrics.get("promoted")),
        "outcome": record.get("outcome"),
        "reason": record.get("outcome_reason"),
        "candidate": (record.get("candidate") or {}).get("version"),
        "sim_success": metrics.get("sim_success"),
        "parent_sim_success": metrics.get("parent_sim_success"),
        "sim_p_worse": metrics.get("sim_p_worse"),
        "sim_p_better": metrics.get("sim_p_better"),
        "sim_sampling_success": metrics.get("sim_sampling_success"),
        "parent_sim_sampling_success": metrics.get("parent_sim_sampling_success"),
        "imagined_success": metrics.get("imagined_success"),
        "parent_imagined_success": metrics.get("parent_imagined_success"),
        "updates": grpo[-1].get("updates") if grpo else None,
        "state": record.get("state"),
        "wall_s": round(time.time() - start, 1),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    gains = [r["sim_success"] - r["parent_sim_success"] for r in rows if r["sim_success"] is not None]
    return {
        "figure": "cycle_seeds_summary",
        "seeds": [r["seed"] for r in rows],
        "promoted": sum(r["promoted"] for r in rows),
        "of": len(rows),
        "gain_at_T0_mean": round(statistics.fmean(gains), 4) if gains else None,
        "gain_at_T0_min": min(gains, default=None),
        "gain_at_T0_max": max(gains, default=None),
        "gain_of_promoted": [round(r["sim_success"] - r["parent_sim_success"], 4) for r in rows if r["promoted"]],
        "unit": "success fraction on 100 validation scenes, candidate minus base, at T = 0",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("demo", type=Path, help="A demo's folder (bash scripts/demo.sh wrote flywheel_data/demo).")
    parser.add_argument("--seeds", default="1,2,3", help="Comma-separated cycle seeds (the demo's cycle is seed 0).")
    parser.add_argument("--out", type=Path, default=Path("runs/cycle_seeds"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    demo = demo_config(args.demo)
    store, base = cycle_store(demo, args.out)
    rows = []
    for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
        row = run_seed(demo, store, base, seed, args.out)
        rows.append(row)
        print(json.dumps({"figure": "cycle_seed", **row}), flush=True)
    print(json.dumps(summary(rows)), flush=True)


if __name__ == "__main__":
    main()
