"""`flywheel train` and `flywheel bench`: composed from one small module per command family.

Each ``cli_*.py`` imports only typer/rich at module level; torch, mujoco and the rest load inside the
command functions, so ``flywheel --help`` stays instant.
"""

from __future__ import annotations

import typer

from trainer import cli_bench, cli_models, cli_rl, cli_service, cli_sft

app = typer.Typer(no_args_is_help=True)
bench_app = typer.Typer(no_args_is_help=True)

cli_sft.register(app, bench_app)
cli_models.register(app, bench_app)
cli_rl.register(app, bench_app)
cli_service.register(app, bench_app)
cli_bench.register(app, bench_app)
