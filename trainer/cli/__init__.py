"""`flywheel train` and `flywheel bench`: composed from one small module per command family.

``sft.py`` (SFT, the base-policy table, policy speed), ``models.py`` (world model, reward model), ``rl.py`` (GRPO),
``service.py`` (the cycle, its status, the worker and beat) and ``bench.py`` (the paper table, the lifelong loop,
the cost of imagined RL). Each has ``register(app, bench_app)`` and imports only typer/rich at module level; torch,
mujoco and the rest load inside the command functions, so ``flywheel --help`` stays instant.
"""

from __future__ import annotations

import typer

from trainer.cli import bench, models, rl, service, sft

app = typer.Typer(no_args_is_help=True)
bench_app = typer.Typer(no_args_is_help=True)

sft.register(app, bench_app)
models.register(app, bench_app)
rl.register(app, bench_app)
service.register(app, bench_app)
bench.register(app, bench_app)
