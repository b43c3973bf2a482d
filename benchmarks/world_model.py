"""World-model benchmark: imagined frames/s next to the simulator's step+render rate, training steps/s, memory.

    python benchmarks/world_model.py [--model DIR | --preset small] [--batch 64] [--sampling-steps 1,2,4]
                                     [--task drawer-close] [--seconds 5] [--train-steps 5]

The same as ``flywheel bench world-model``. Prints JSON lines ``{"name", "figure", "value", "unit", "machine",
"config"}``; see ``trainer/bench/world_model.py`` for what each figure measures.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("MUJOCO_GL", "egl")


def main() -> None:
    from trainer.bench.world_model import BenchConfig, run_bench

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="a trained world model directory")
    p.add_argument("--preset", default="small")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--sampling-steps", default="1,2,4")
    p.add_argument("--task", default="drawer-close")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--train-steps", type=int, default=5)
    a = p.parse_args()
    steps = tuple(int(s) for s in a.sampling_steps.split(","))
    run_bench(
        BenchConfig(
            model=a.model,
            preset=a.preset,
            batch=a.batch,
            sampling_steps=steps,
            task=a.task,
            seconds=a.seconds,
            train_steps=a.train_steps,
        )
    )


if __name__ == "__main__":
    main()
