"""``flywheel train world-model``, ``flywheel train reward-model`` and ``flywheel bench world-model``.

typer/rich (and the standard library) only at module level; torch and the models load inside the commands.
Each command prints rich tables and, with ``--json``, the same figures as JSON lines
(``{"name", "figure", "value", "unit", "machine", "config"}``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from data_store.measure import emit
from vla.threads import bound_threads

console = Console()


def table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> Table:
    t = Table(title=title)
    for c in columns:
        t.add_column(c, justify="left" if c in ("horizon", "task", "level", "model") else "right")
    for r in rows:
        t.add_row(*(_fmt(r.get(c)) for c in columns))
    return t


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 1000 else f"{v:.0f}"
    return "" if v is None else str(v)


THREADS_HELP = "Torch threads (0: one when the machine is busier than its cores, else all)."


def _fail(message: str) -> None:
    console.print(f"[red]{message}[/red]")
    raise typer.Exit(1)


def _load(data: Path, task: str, policy_version: str, camera: str) -> list[Any]:
    from trainer.world_model.data import load_episodes

    if not data.exists():
        raise typer.BadParameter(f"no episode store at {data}", param_hint="--data")
    try:
        episodes = load_episodes(data, task=task or None, policy_version=policy_version or None, camera=camera or None)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    if not episodes:
        _fail(f"no complete episodes in {data} match task={task or '*'} policy_version={policy_version or '*'}")
    return episodes


QUALITY_COLUMNS = ["model", "horizon", "frames", "psnr", "ssim", "feature_distance"]
AGREEMENT_COLUMNS = [
    "task",
    "episodes",
    "real_success_rate",
    "imagined_success_rate",
    "agreement",
    "reward_on_real_agreement",
    "false_success",
    "missed_success",
]


def world_model(
    data: Path = typer.Option(..., "--data", help="The episode store (a folder of Zarr episodes)."),
    out: Path = typer.Option(..., "--out", help="Folder for the trained model (and its resumable checkpoint)."),
    preset: str = typer.Option("small", help="Model size: tiny | small | base."),
    steps: int = typer.Option(1500, min=1, help="Optimizer steps."),
    batch_size: int = typer.Option(8, min=1, help="Action chunks per step."),
    lr: float = typer.Option(5e-4, help="Peak learning rate (AdamW, warm-up then cosine)."),
    finetune_from: Path | None = typer.Option(
        None, help="Fine-tune this trained world model on the matching episodes (WMPO policy-behaviour alignment)."
    ),
    resume: bool = typer.Option(False, help="Continue the run in OUT/checkpoint after a crash or a kill."),
    task: str = typer.Option("", help="Only this task's episodes (default: every task)."),
    policy_version: str = typer.Option("", help="Only episodes of this policy version (e.g. the current policy)."),
    camera: str = typer.Option("", help="Camera to model (default: each episode's first)."),
    held_out: float = typer.Option(0.25, min=0.0, max=0.9, help="Fraction of episodes held out for the quality table."),
    sampling_steps: int = typer.Option(2, min=1, max=10, help="Sampling steps for the quality replay."),
    context_noise: float | None = typer.Option(
        None, min=0.0, max=0.5, help="Max noise level on context frames in training (default: the preset's)."
    ),
    seed: int = typer.Option(0),
    threads: int = typer.Option(0, min=0, help=THREADS_HELP),
    as_json: bool = typer.Option(False, "--json", help="Also print the figures as JSON lines."),
) -> None:
    """Train the action-conditioned world model on the store, then replay held-out episodes open-loop and print
    PSNR / SSIM / feature distance per horizon bucket."""
    from trainer.world_model import PRESETS, TrainConfig, fit_world_model, split_held_out

    if preset not in PRESETS:
        raise typer.BadParameter(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}", param_hint="--preset")
    if finetune_from is not None and not (finetune_from / "manifest.json").exists():
        raise typer.BadParameter(f"{finetune_from} is not a trained world model", param_hint="--finetune-from")
    if resume and not (out / "checkpoint" / "train_state.json").exists():
        raise typer.BadParameter(f"nothing to resume in {out}/checkpoint", param_hint="--resume")
    episodes = _load(data, task, policy_version, camera)
    bound_threads(threads)
    train_eps, test_eps = split_held_out(episodes, held_out, seed=seed)
    console.print(
        f"world model: {len(train_eps)} training episodes, {len(test_eps)} held out "
        f"({sum(len(e) for e in train_eps)} frames); preset {preset}"
    )
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed, warmup_steps=min(100, max(1, steps // 10)))
    run_cfg = {"preset": preset, "steps": steps, "batch_size": batch_size, "data": str(data), "task": task or None}
    result = fit_world_model(
        train_eps,
        out,
        config=PRESETS[preset],
        train=cfg,
        finetune_from=finetune_from,
        resume=resume,
        manifest={"held_out_ids": sorted(e.episode_id for e in test_eps)},
        on_log=(lambda s, v: emit("world_model/train", "loss", v, "mse", run_cfg, step=s)) if as_json else None,
        progress=True,
        context_noise=context_noise,
    )
    first, last = result.losses[0][1] if result.losses else float("nan"), result.losses[-1][1] if result.losses else 0
    console.print(
        f"trained {result.steps} steps in {result.seconds:.0f} s; loss {first:.4f} -> {last:.4f}; saved {out}"
    )
    seen = set(json.loads((out / "manifest.json").read_text()).get("seen_ids", []))
    unseen = [e for e in episodes if e.episode_id not in seen]  # held out here, and by any parent model
    if unseen:
        _quality_report(out, unseen, sampling_steps, seed, run_cfg, as_json)


def _quality_report(
    model_dir: Path, episodes: list[Any], sampling_steps: int, seed: int, cfg: dict, as_json: bool
) -> None:
    from trainer.bench.imagination_quality import copy_baseline, replay_quality
    from trainer.world_model import PixelWorldModel
    from trainer.world_model.replay import replay

    wm = PixelWorldModel.load(model_dir, sampling_steps=sampling_steps, seed=seed)
    rows = [{"model": "world model", **r} for r in replay_quality(replay(wm, episodes, seed=seed), episodes)]
    base = [{"model": "copy first frame", **r} for r in replay_quality(copy_baseline(episodes), episodes)]
    console.print(table(f"open-loop replay of {len(episodes)} held-out episodes", rows + base, QUALITY_COLUMNS))
    if as_json:
        for r in rows + base:
            for fig, unit in (("psnr", "dB"), ("ssim", "ratio"), ("feature_distance", "1-cos")):
                emit(
                    "world_model/replay_quality",
                    fig,
                    r[fig],
                    unit,
                    {**cfg, "sampling_steps": sampling_steps},
                    horizon=r["horizon"],
                    model=r["model"],
                    frames=r["frames"],
                    features=r["features"],
                )


def reward_model(
    data: Path = typer.Option(..., "--data", help="The episode store (a folder of Zarr episodes)."),
    out: Path = typer.Option(..., "--out", help="Folder for the trained reward model."),
    preset: str = typer.Option("small", help="Model size: tiny | small."),
    steps: int = typer.Option(1500, min=1, help="Optimizer steps."),
    world_model_dir: Path | None = typer.Option(
        None, "--world-model", help="A trained world model: print the success-agreement table on held-out episodes."
    ),
    train_on_imagined: bool = typer.Option(
        False, help="Also train on the world model's replays of the training episodes (needs --world-model)."
    ),
    task: str = typer.Option("", help="Only this task's episodes (default: every task)."),
    policy_version: str = typer.Option("", help="Only episodes of this policy version."),
    camera: str = typer.Option("", help="Camera (default: each episode's first)."),
    held_out: float = typer.Option(
        0.25, min=0.05, max=0.9, help="Fraction held out for testing (with --world-model: the episodes it never saw)."
    ),
    sampling_steps: int = typer.Option(2, min=1, max=10, help="World-model sampling steps for the agreement replay."),
    seed: int = typer.Option(0),
    threads: int = typer.Option(0, min=0, help=THREADS_HELP),
    as_json: bool = typer.Option(False, "--json", help="Also print the figures as JSON lines."),
) -> None:
    """Train the success classifier, calibrate its threshold, print precision / recall / F1 on held-out episodes
    and, with --world-model, how often its verdict on imagined replays matches the real outcome."""
    from dataclasses import replace

    from trainer.reward_model import PRESETS, fit_with_imagination
    from trainer.world_model import PixelWorldModel

    if preset not in PRESETS:
        raise typer.BadParameter(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}", param_hint="--preset")
    if world_model_dir is not None and not (world_model_dir / "manifest.json").exists():
        raise typer.BadParameter(f"{world_model_dir} is not a trained world model", param_hint="--world-model")
    if train_on_imagined and world_model_dir is None:
        raise typer.BadParameter("--train-on-imagined needs --world-model", param_hint="--train-on-imagined")
    episodes = [e for e in _load(data, task, policy_version, camera) if e.success is not None]
    bound_threads(threads)
    train_eps, test_eps = _reward_model_split(episodes, world_model_dir, held_out, seed)
    if not any(e.success for e in train_eps) or not any(e.success is False for e in train_eps):
        _fail("the reward model needs both successful and failed labelled episodes")
    wm = PixelWorldModel.load(world_model_dir, sampling_steps=sampling_steps, seed=seed) if world_model_dir else None
    use_wm = wm if train_on_imagined else None
    n_imagined = len(train_eps) if use_wm is not None else 0
    run_cfg = {"preset": preset, "steps": steps, "data": str(data), "task": task or None, "imagined": n_imagined}
    console.print(
        f"reward model: {len(train_eps)} training episodes (+{n_imagined} imagined), {len(test_eps)} held out"
    )
    with console.status(
        "training the reward model" + (" (replaying its episodes in the world model)" if use_wm else "")
    ):
        result = fit_with_imagination(
            train_eps, out, config=replace(PRESETS[preset], steps=steps, seed=seed), world_model=use_wm
        )
    _classifier_report(result.model, test_eps, run_cfg, as_json)
    if wm is not None:
        _agreement_report(wm, result.model, test_eps, seed, {**run_cfg, "sampling_steps": sampling_steps}, as_json)
    console.print(f"saved {out}")


def _reward_model_split(
    episodes: list[Any], world_model_dir: Path | None, held_out: float, seed: int
) -> tuple[list[Any], list[Any]]:
    """(training, test) episodes of the reward model."""
    from trainer.world_model import split_held_out

    if world_model_dir is None:
        return split_held_out(episodes, held_out, seed=seed)
    # the honest test: episodes the world model never trained on (nor did its parents)
    manifest = json.loads((world_model_dir / "manifest.json").read_text())
    seen = set(manifest.get("seen_ids") or manifest.get("dataset", {}).get("ids", []))
    train_eps = [e for e in episodes if e.episode_id in seen]
    test_eps = [e for e in episodes if e.episode_id not in seen]
    if not test_eps:
        _fail(f"every matching episode was seen by the world model in {world_model_dir}: nothing to test on")
    return train_eps, test_eps


def _classifier_report(rm: Any, test_eps: list[Any], cfg: dict, as_json: bool) -> None:
    """Precision / recall / F1 of the reward model on the held-out real episodes, per frame and per episode."""
    from trainer.reward_model import evaluate

    metrics = evaluate(rm, test_eps)
    rows = [{"level": lvl, **metrics[lvl]} for lvl in ("frame", "episode")]
    console.print(
        table(
            f"reward model on {len(test_eps)} held-out real episodes (threshold {rm.threshold:.2f})",
            rows,
            ["level", "n", "positives", "precision", "recall", "f1", "accuracy"],
        )
    )
    if as_json:
        for r in rows:
            emit(
                f"reward_model/{r['level']}",
                "f1",
                r["f1"],
                "ratio",
                cfg,
                precision=r["precision"],
                recall=r["recall"],
                threshold=rm.threshold,
            )


def _agreement_report(wm: Any, rm: Any, test_eps: list[Any], seed: int, cfg: dict, as_json: bool) -> None:
    """How often the reward model's verdict on the world model's replays matches the real outcome."""
    from trainer.bench.imagination_quality import success_agreement
    from trainer.world_model.replay import replay

    imagined_test = replay(wm, test_eps, seed=seed)
    agree = success_agreement(imagined_test, test_eps, rm)
    console.print(
        table("success agreement: reward model on imagined replays vs the real outcome", agree, AGREEMENT_COLUMNS)
    )
    if as_json:
        for r in agree:
            emit(
                "imagination/success_agreement",
                "agreement",
                r["agreement"],
                "fraction",
                cfg,
                **{k: v for k, v in r.items() if k != "agreement"},
            )


def bench_world_model(
    model: Path | None = typer.Option(None, help="A trained world model (default: an untrained one of --preset)."),
    preset: str = typer.Option("small", help="Architecture when no --model is given: tiny | small | base."),
    batch: int = typer.Option(64, min=1, help="Imagined trajectories generated together."),
    sampling_steps: str = typer.Option("1,2,4", help="Comma-separated sampling-step counts to measure."),
    task: str = typer.Option("drawer-close", help="Simulator task whose step+render rate is measured beside it."),
    seconds: float = typer.Option(5.0, min=0.5, help="Seconds per measurement (roughly)."),
    train_steps: int = typer.Option(5, min=1, help="Training steps to time."),
    threads: int = typer.Option(0, min=0, help=THREADS_HELP),
    store: Path | None = typer.Option(
        None, help="Measure action-replay agreement instead: an episode store of simulated --task episodes."
    ),
    policy: Path | None = typer.Option(None, help="With --store: the policy whose imagined groups are replayed."),
    reward_model: Path | None = typer.Option(None, help="With --store: the cycle's reward model (with --model)."),
    starts: int = typer.Option(16, min=1, help="With --store: starts of each kind (first frames, keyframes)."),
    group: int = typer.Option(0, min=0, help="With --store: rollouts per start (0: the recipe's GRPO group)."),
    temperature: float = typer.Option(-1.0, help="With --store: sampling temperature (< 0: the recipe's)."),
    snapshot: Path | None = typer.Option(
        None, help="With --store: a cycle's snapshot.json (its work folder): only the episodes that cycle used."
    ),
) -> None:
    """Imagined frames/s (batched, 64×64) next to the simulator's step+render rate, training steps/s and peak memory,
    as JSON lines. With --store, --policy, --model and --reward-model: action-replay agreement instead (imagined
    groups from held-out first frames and keyframe starts, each trajectory's actions replayed on the simulated arm:
    outcome, advantage-sign and reward-model agreement, by step)."""
    from trainer.bench.world_model import BenchConfig, run_bench

    if store is not None:
        bound_threads(threads)
        ids = _snapshot_ids(snapshot) if snapshot is not None else None
        _bench_agreement(store, policy, model, reward_model, task, starts, group, temperature, ids)
        return
    try:
        steps = tuple(int(s) for s in sampling_steps.split(",") if s.strip())
    except ValueError:
        raise typer.BadParameter(
            "expected comma-separated integers, e.g. 1,2,4", param_hint="--sampling-steps"
        ) from None
    if not steps or any(not 1 <= s <= 10 for s in steps):
        raise typer.BadParameter("sampling steps must be in 1..10", param_hint="--sampling-steps")
    bound_threads(threads)
    cfg = BenchConfig(
        model=str(model) if model else None,
        preset=preset,
        batch=batch,
        sampling_steps=steps,
        task=task,
        seconds=seconds,
        train_steps=train_steps,
    )
    try:
        run_bench(cfg, echo=lambda line: print(line, flush=True))
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))


def _bench_agreement(
    store: Path,
    policy: Path | None,
    model: Path | None,
    reward_model: Path | None,
    task: str,
    starts: int,
    group: int,
    temperature: float,
    episode_ids: tuple[str, ...] | None,
) -> None:
    from trainer.bench.agreement import AgreementConfig, run_agreement

    for path, hint in ((policy, "--policy"), (model, "--model"), (reward_model, "--reward-model")):
        if path is None or not path.is_dir():
            raise typer.BadParameter(f"--store needs {hint}: a folder, got {path}", param_hint=hint)
    if not store.is_dir():
        raise typer.BadParameter(f"no episode store at {store}", param_hint="--store")
    cfg = AgreementConfig(
        store=str(store), policy=str(policy), world_model=str(model), reward_model=str(reward_model), task=task,
        starts=starts, group=group or None, temperature=None if temperature < 0 else temperature,
        episode_ids=episode_ids,
    )  # fmt: skip
    try:
        found = run_agreement(cfg, emit)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    if not found:
        _fail(f"no episode of {task!r} in {store} recorded its scene seed: nothing can be replayed on the arm")
    for kind, a in found.items():  # stdout stays JSON lines
        Console(stderr=True).print(f"{kind}: {a.line()}", highlight=False)


def _snapshot_ids(path: Path) -> tuple[str, ...]:
    """The episode ids of a cycle's ``snapshot.json`` (its work folder), or a one-line error."""
    try:
        snap = json.loads(path.read_text())
        return tuple(str(e) for e, _ in snap.get("snapshot", snap)["episodes"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise typer.BadParameter(f"{path} is not a cycle's snapshot.json ({e})", param_hint="--snapshot") from None


def register(train: typer.Typer, bench: typer.Typer) -> None:
    """Add this family's commands."""
    train.command("world-model")(world_model)
    train.command("reward-model")(reward_model)
    bench.command("world-model")(bench_world_model)
