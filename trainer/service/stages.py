"""The real stage table: each stage is one step of ``trainer/cycle.py`` (the one implementation of the cycle,
the same steps ``flywheel bench paper`` measures), with the settings of the cycle's ``trainer.recipe.Recipe``.

    snapshot → world model → reward model (also on the world model's replays) → imagined GRPO → evaluate → register

A stage whose trainer function is not importable fails the run with ``StageUnavailable`` naming
what is missing; nothing stands in for it. The adapters add only what a service needs: the snapshot's
episodes, an output folder, a checkpoint folder with ``resume``, and a progress callback.
"""

from __future__ import annotations

import importlib
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainer.service.progress import list_runs, read_run
from trainer.service.stage import Queue, Stage, StageContext, StageError, StageOutput, StageUnavailable

CANDIDATE_ALIAS = "candidate"


def require(module: str, function: str, what: str) -> Callable[..., Any]:
    """``module.function``, or StageUnavailable saying which stage cannot run and why."""
    try:
        fn = getattr(importlib.import_module(module), function)
    except ImportError as e:
        raise StageUnavailable(f"{what} is not available: cannot import {module} ({e})") from e
    except AttributeError as e:
        raise StageUnavailable(f"{what} is not available: {module} has no {function}()") from e
    return fn  # type: ignore[no-any-return]


def _verify(artifact: Path) -> None:
    from vla.manifest import verify_artifact

    verify_artifact(artifact)


def training_run_tag(key: str) -> str:
    """What the candidate's manifest and registry row record as its training run: the idempotency key."""
    return f"flywheel:{key}"


def numbers(d: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The numeric leaves of a nested dict, flattened: {"episode": {"f1": 0.9}} -> {"episode_f1": 0.9}."""
    out: dict[str, float] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(numbers(v, f"{prefix}{k}_"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out[f"{prefix}{k}"] = float(v)
    return out


def cycle_recipe(ctx: StageContext) -> Any:
    """The cycle's ``trainer.recipe.Recipe``; StageError naming an unknown recipe or setting."""
    try:
        return ctx.config.resolved_recipe()
    except ValueError as e:
        raise StageError(f"cycle config: {e}") from e


def snapshot_store(ctx: StageContext) -> Any:
    """The episode store, showing only the snapshot's episodes."""
    from data_store.episodes import EpisodeStore
    from trainer.cycle import StoreView

    return StoreView(EpisodeStore(ctx.snapshot.store, recover=False), ctx.snapshot.episode_ids)


def bookkeeping(ctx: StageContext, stage: str, known: tuple[str, ...]) -> dict[str, Any]:
    """The stage's options (``CycleConfig.options[stage]``): bookkeeping only, never a recipe setting."""
    opts = ctx.config.stage_options(stage)
    unknown = sorted(set(opts) - set(known))
    if unknown:
        raise StageError(
            f"{stage}: unknown option(s) {unknown}; known: {list(known)} (training settings are recipe overrides: "
            '"overrides": {...} in the cycle config)'
        )
    return opts


def previous_run_models(ctx: StageContext) -> tuple[Path, Path] | None:
    """The world and reward models of ``CycleConfig.continue_from`` (a run id, or "last": the newest succeeded run of
    this task), to fine-tune (co-evolution). None when the config names none, or "last" finds none."""
    name = ctx.config.continue_from
    if not name:
        return None
    settings = ctx.settings
    if name == "last":
        runs = [
            r
            for r in list_runs(settings, limit=1000)
            if r["run_id"] != ctx.run_id and r["state"] == "succeeded" and r["config"].get("task") == ctx.config.task
        ]
        if not runs:
            return None
        record = runs[0]
    else:
        try:
            record = read_run(settings, name)
        except (KeyError, ValueError) as e:
            raise StageError(f"continue_from: {e}") from e
    results = record.get("results") or {}
    try:
        paths = tuple(settings.work_dir / record["key"] / results[s]["artifacts"]["model"] for s in _MODELS)
    except (KeyError, TypeError) as e:
        raise StageError(f"continue_from: run {record['run_id']} has no trained world and reward model") from e
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise StageError(f"continue_from: run {record['run_id']}'s models are gone: {', '.join(missing)}")
    return paths[0], paths[1]


_MODELS = ("world_model", "reward_model")


class WorldModelStage:
    """Fit the action-conditioned video world model on the snapshot (WMPO §3.2; WoVR, arXiv 2602.13977):
    ``trainer.cycle.fit_world_model_step``; fine-tuned from ``continue_from``'s model when the config names one.

    Options: ``checkpoint_every``, ``log_every``, ``camera``. Checkpoints go to ``out/world_model/checkpoint`` and
    a redelivery resumes from them."""

    name = "world_model"
    queue: Queue = "gpu"
    needs: tuple[str, ...] = ()

    def run(self, ctx: StageContext) -> StageOutput:
        fit = require("trainer.cycle", "fit_world_model_step", "world-model training")
        from trainer.cycle import episodes_of

        opts = bookkeeping(ctx, self.name, ("checkpoint_every", "log_every", "camera"))
        recipe = cycle_recipe(ctx)
        previous = previous_run_models(ctx)
        steps = recipe.refit_world_model_steps if previous else recipe.world_model_steps
        out = ctx.out_dir / "world_model"
        model = fit(
            recipe,
            episodes_of(snapshot_store(ctx), ctx.snapshot.episode_ids, opts.get("camera")),
            out,
            init=previous[0] if previous else None,
            resume=True,  # from out/checkpoint when a killed delivery left one
            on_log=lambda step, loss: ctx.report(step, steps, loss=loss),
            checkpoint_every=int(opts.get("checkpoint_every", 200)),
            log_every=int(opts.get("log_every", 25)),
        )
        ctx.report(steps, steps)
        manifest = json.loads((out / "manifest.json").read_text())
        losses = manifest.get("losses") or []
        metrics = {"loss": float(losses[-1][1])} if losses else {}
        metrics.update(steps=float(steps), parameters=float(model.num_parameters()), fine_tuned=float(bool(previous)))
        return StageOutput(artifacts={"model": ctx.relative(out)}, metrics=metrics)


class RewardModelStage:
    """Fit the success classifier on the snapshot's labelled episodes and on the world model's replays of them,
    and calibrate its threshold (WMPO §3.3): ``trainer.cycle.fit_reward_model_step``. Short enough to run again
    from the start after a crash (no checkpoints). Option: ``camera``."""

    name = "reward_model"
    queue: Queue = "gpu"
    needs: tuple[str, ...] = ("world_model",)

    def run(self, ctx: StageContext) -> StageOutput:
        fit = require("trainer.cycle", "fit_reward_model_step", "reward-model training")
        from trainer.cycle import episodes_of
        from trainer.world_model import load_world_model

        opts = bookkeeping(ctx, self.name, ("camera",))
        recipe = cycle_recipe(ctx)
        previous = previous_run_models(ctx)
        steps = recipe.refit_reward_model_steps if previous else recipe.reward_model_steps
        world_model = load_world_model(ctx.artifact("world_model", "model"), seed=recipe.seed)
        out = ctx.out_dir / "reward_model"
        try:
            model, calibration = fit(
                recipe,
                episodes_of(snapshot_store(ctx), ctx.snapshot.episode_ids, opts.get("camera")),
                world_model,
                out,
                init=previous[1] if previous else None,
                on_log=lambda step, loss: ctx.report(step, steps, loss=loss),
            )
        except ValueError as e:
            raise StageError(f"reward model: {e}") from e
        ctx.report(steps, steps)
        metrics = {"threshold": float(model.threshold), **numbers(calibration)}
        return StageOutput(artifacts={"model": ctx.relative(out)}, metrics=metrics)


def cycle_models(ctx: StageContext, recipe: Any) -> tuple[Any, Any]:
    from trainer.reward_model import FrameRewardModel
    from trainer.world_model import load_world_model

    world_model = load_world_model(ctx.artifact("world_model", "model"), seed=recipe.seed)
    return world_model, FrameRewardModel.load(ctx.artifact("reward_model", "model"))


class ImaginedGRPOStage:
    """GRPO on rollouts imagined in the world model, from the snapshot's first frames and, with the recipe's
    ``kir_share``, keyframes (WMPO §3.3, WoVR's KIR): ``trainer.cycle.improve``. The first frames of a
    ``judge_share`` of the episodes are held out for the evaluation stage.

    Options: ``camera``, ``checkpoint_every`` (iterations). Resume: the policy is saved to the checkpoint folder
    every ``checkpoint_every`` iterations and a redelivery continues from it. Departure: the optimizer's moments
    are not checkpointed (``wmpo`` makes its own optimizer), so a resumed stage restarts Adam's averages."""

    name = "grpo"
    queue: Queue = "gpu"
    needs: tuple[str, ...] = ("world_model", "reward_model")

    def run(self, ctx: StageContext) -> StageOutput:
        improve = require("trainer.cycle", "improve", "imagined GRPO")
        from trainer.cycle import cycle_horizon, imagination_for, imagination_trusted, judge_split, weights_differ
        from vla.artifact import load_artifact, read_manifest, save_artifact

        opts = bookkeeping(ctx, self.name, ("camera", "checkpoint_every"))
        recipe = cycle_recipe(ctx)
        iterations, every = recipe.iterations, int(opts.get("checkpoint_every", 5))
        task = single_task(ctx)
        horizon = cycle_horizon(recipe, task, [n for _, n in ctx.snapshot.episodes])
        ckpt, state = ctx.checkpoint_dir / "policy", ctx.checkpoint_dir / "iterations.json"
        done = json.loads(state.read_text())["done"] if ctx.resume and state.is_file() and ckpt.is_dir() else 0
        parent_policy = load_artifact(ctx.config.policy)
        policy = load_artifact(ckpt) if done else load_artifact(ctx.config.policy)
        parent = read_manifest(ctx.config.policy)["version"]
        world_model, reward_model = cycle_models(ctx, recipe)
        try:
            store = snapshot_store(ctx)
            split = judge_split(ctx.snapshot.episode_ids, recipe, store)
            imagination = imagination_for(
                store, task, world_model, reward_model, recipe, horizon, opts.get("camera"), split.train
            )
        except ValueError as e:
            raise StageError(f"grpo: {e}") from e
        last: dict[str, float] = {}
        updates = drawn = 0  # GRPO updates made; batches of groups imagined (this run of the stage)

        def on_iteration(it: int, stats: dict[str, float]) -> None:
            nonlocal updates
            n = done + it + 1
            updates += int(stats.get("updated", 0.0))
            last.update(numbers(stats))
            ctx.report(n, iterations, **{k: v for k, v in last.items() if k in _GRPO_SHOWN}, draws=drawn)
            if n % every == 0 and n < iterations:
                save_artifact(policy, ckpt, parent_version=parent, overwrite=True)
                state.write_text(json.dumps({"done": n}))

        def on_draw(it: int, draws: int, figures: dict[str, Any]) -> None:  # progress inside an iteration
            nonlocal drawn
            drawn += 1
            shown = {k: v for k, v in last.items() if k in _GRPO_SHOWN}
            ctx.report(done + it, iterations, **shown, draws=drawn, draw_success=figures["imagined_success"])

        agreement = replay_check(ctx, recipe, parent_policy, imagination, store, task, split, horizon, opts)
        trusted, why = imagination_trusted(agreement, recipe)
        if trusted:
            improve(
                policy, imagination, recipe, on_iteration, iterations=iterations - done, first_iteration=done,
                on_draw=on_draw,
            )  # fmt: skip
        out = ctx.out_dir / "policy"
        metrics = {k: v for k, v in last.items() if k in _GRPO_SHOWN}
        metrics.update(updates=float(updates), draws=float(drawn), moved=float(weights_differ(policy, parent_policy)))
        metrics.update(agreement.metrics() if agreement is not None else {})
        info = {"agreement": agreement.line()} if agreement is not None else {}
        if not trusted:
            info["stopped"] = why
        save_artifact(
            policy, out, parent_version=parent, training_run=training_run_tag(ctx.key),
            dataset_snapshot=ctx.snapshot.digest, metrics={f"grpo_{k}": v for k, v in metrics.items()}, overwrite=True,
        )  # fmt: skip
        return StageOutput(artifacts={"policy": ctx.relative(out)}, metrics=metrics, info=info)


def replay_check(
    ctx: StageContext,
    recipe: Any,
    parent: Any,
    imagination: Any,
    store: Any,
    task: str,
    split: Any,
    horizon: int,
    opts: dict[str, Any],
) -> Any:
    """``trainer.cycle.check_imagination`` on the cycle's simulated arm (``CycleConfig.sim_task``); None without
    one (a physical arm's episodes cannot be replayed)."""
    if not ctx.config.sim_task or recipe.agreement_starts <= 0:
        return None
    from trainer.agreement import replay_arm
    from trainer.cycle import check_imagination, held_out_starts

    starts = held_out_starts(store, task, split, horizon, imagination.world_model, opts.get("camera"))
    try:
        arm = replay_arm(ctx.config.sim_task, imagination)
    except ValueError:  # the episodes' camera is not one of the simulator's: nothing to replay them on
        return None
    with arm:
        return check_imagination(parent, imagination, starts, store, arm, recipe, horizon)


_GRPO_SHOWN = ("imagined_success", "filtered_frac", "clip_frac", "loss", "batch_success")


def single_task(ctx: StageContext) -> str:
    """The task a GRPO stage trains: the cycle's, or the only one among the snapshot's episodes."""
    if ctx.snapshot.task:
        return ctx.snapshot.task
    from data_store.episodes import EpisodeStore

    store = EpisodeStore(ctx.snapshot.store, recover=False)
    tasks = {store.info(e).task for e in ctx.snapshot.episode_ids}
    if len(tasks) != 1:
        raise StageError(f"grpo: the snapshot holds {len(tasks)} tasks ({', '.join(sorted(tasks))}); pass --task")
    return tasks.pop()


class EvaluateStage:
    """The candidate beside its parent, both at the recipe's deployment temperature (and, reported only, at the
    sampling temperature): ``trainer.cycle.judge``. Success imagined from the held-out first frames and, where
    ``CycleConfig.sim_task`` is set, true success on ``sim_episodes`` seeded validation scenes of the simulated
    arm, with paired tests. Decides whether the candidate may be promoted (``info["promote"]``, ``info["reason"]``).

    Option: ``camera``."""

    name = "evaluate"
    queue: Queue = "gpu"
    needs: tuple[str, ...] = ("grpo", "world_model", "reward_model")

    def run(self, ctx: StageContext) -> StageOutput:
        judge = require("trainer.cycle", "judge", "evaluation")
        from trainer.cycle import SimJudge, cycle_horizon, held_out_starts, imagination_for, judge_split
        from vla.artifact import load_artifact

        opts = bookkeeping(ctx, self.name, ("camera",))
        recipe = cycle_recipe(ctx)
        candidate = load_artifact(ctx.artifact("grpo", "policy"))
        parent = load_artifact(ctx.config.policy)
        world_model, reward_model = cycle_models(ctx, recipe)
        task = single_task(ctx)
        horizon = cycle_horizon(recipe, task, [n for _, n in ctx.snapshot.episodes])
        store = snapshot_store(ctx)
        split = judge_split(ctx.snapshot.episode_ids, recipe, store)
        camera = opts.get("camera")
        imagination = imagination_for(store, task, world_model, reward_model, recipe, horizon, camera, split.train)
        starts = held_out_starts(store, task, split, horizon, world_model, camera)
        sim = (
            SimJudge(ctx.config.sim_task, ctx.config.sim_episodes, safety=recipe.safety)
            if ctx.config.sim_task
            else None
        )
        total = (1 + int(sim is not None)) * (1 if recipe.deploy_temperature == recipe.grpo.temperature else 2)
        lines: list[str] = []

        def progress(line: str) -> None:
            lines.append(line)
            ctx.report(len(lines), total)

        updated = bool(ctx.inputs["grpo"].metrics.get("moved", 1.0))
        verdict = judge(candidate, parent, imagination, starts, recipe, sim, updated=updated, progress=progress)
        ctx.report(total, total)
        stopped = ctx.inputs["grpo"].info.get("stopped")  # GRPO did not run: imagination was not trusted
        reason = str(stopped) if stopped and not verdict.promote else verdict.reason
        info = {"promote": verdict.promote, "reason": reason, "figures": lines}
        return StageOutput(metrics=verdict.metrics(), info=info)


class RegisterStage:
    """Register the candidate (its manifest carrying the evaluation metrics) and point ``candidate`` at it, when the
    evaluation stage promoted it; otherwise the run ends "no improvement" with the evaluation's reason, nothing is
    registered and no alias moves.

    Idempotent twice over: a version whose ``training_run`` is this key is returned as is, and the
    registry itself returns the existing row for the same content.
    """

    name = "register"
    queue: Queue = "cpu"
    needs: tuple[str, ...] = ("grpo", "evaluate")

    def run(self, ctx: StageContext) -> StageOutput:
        import sqlalchemy as sa

        from data_store.registry import FLEET, policies
        from data_store.registry.models import PolicyVersion

        evaluation = ctx.inputs["evaluate"]
        metrics = {k: float(v) for k, v in evaluation.metrics.items()}
        if not evaluation.info.get("promote", False):
            reason = str(evaluation.info.get("reason") or "no improvement")
            ctx.report(1, 1)
            return StageOutput(metrics=metrics, info={"outcome": "no improvement", "reason": reason})
        tag = training_run_tag(ctx.key)
        registry = ctx.settings.open_registry()
        try:
            with registry.session() as s:
                row = s.scalar(sa.select(PolicyVersion).where(PolicyVersion.training_run == tag))
                created = row is None
                if row is None:
                    final = self.candidate_artifact(ctx, tag, metrics)
                    row, created = policies.register_policy(s, registry.artifacts, final, by="trainer", verify=_verify)
                why = f"flywheel run {ctx.run_id}: {evaluation.info.get('reason', '')}"[:500]
                policies.set_alias(s, FLEET, CANDIDATE_ALIAS, row.version, by="trainer", why=why)
                candidate = {"version": row.version, "metrics": dict(row.metrics or {}), "created": created}
        except StageError:
            raise
        except Exception as e:
            raise StageError(f"register: the registry refused the candidate: {e}") from e
        finally:
            registry.close()
        ctx.report(1, 1)
        info = {"candidate": candidate, "outcome": "promoted", "reason": str(evaluation.info.get("reason", ""))}
        return StageOutput(metrics=metrics, info=info)

    @staticmethod
    def candidate_artifact(ctx: StageContext, tag: str, metrics: dict[str, float]) -> Path:
        """GRPO's policy with a manifest that names this run, its snapshot and its evaluation metrics."""
        from vla.manifest import read_manifest, write_manifest

        final = ctx.out_dir / "policy"
        shutil.rmtree(final, ignore_errors=True)
        shutil.copytree(ctx.artifact("grpo", "policy"), final)
        manifest = read_manifest(final)
        write_manifest(
            final,
            parent_version=manifest.get("parent_version"),
            training_run=tag,
            dataset_snapshot=ctx.snapshot.digest,
            metrics={**(manifest.get("metrics") or {}), **metrics},
            robot_spec=manifest.get("robot_spec"),
            created_at=str(manifest.get("created_at")),
        )
        return final


STAGES: dict[str, Stage] = {
    s.name: s for s in (WorldModelStage(), RewardModelStage(), ImaginedGRPOStage(), EvaluateStage(), RegisterStage())
}
