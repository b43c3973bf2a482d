"""The real stage table: each stage adapts one trainer function to the ``Stage`` interface.

A stage whose trainer function is not importable fails the run with ``StageUnavailable`` naming
what is missing; nothing stands in for it. The adapters ask nothing of the trainers beyond their
public functions: the episodes to train on (``ctx.snapshot``), an output folder, a checkpoint
folder with ``resume``, and a progress callback.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def options_for(cls: Any, opts: dict[str, Any], stage: str, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """The stage options that are fields of the dataclass ``cls``; StageError naming any other option."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(opts) - known - set(extra))
    if unknown:
        raise StageError(f"{stage}: unknown option(s) {unknown}; known: {sorted(known | set(extra))}")
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in opts.items() if k in known}


def preset_of(presets: dict[str, Any], name: str, what: str) -> Any:
    if name not in presets:
        raise StageError(f"{what}: unknown preset {name!r}; known: {', '.join(presets)}")
    return presets[name]


def numbers(d: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The numeric leaves of a nested dict, flattened: {"episode": {"f1": 0.9}} -> {"episode_f1": 0.9}."""
    out: dict[str, float] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(numbers(v, f"{prefix}{k}_"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out[f"{prefix}{k}"] = float(v)
    return out


def snapshot_episodes(ctx: StageContext, camera: str | None) -> list[Any]:
    """The snapshot's episodes as the world-model package reads them (frames of one camera, actions, labels)."""
    from trainer.world_model import load_episodes

    snap = ctx.snapshot
    return load_episodes(snap.store, camera=camera, task=snap.task, episode_ids=snap.episode_ids)


class SnapshotStore:
    """An episode store that shows only the snapshot's episodes, for functions that list the store themselves."""

    def __init__(self, ctx: StageContext) -> None:
        from data_store.episodes import EpisodeStore

        self.store = EpisodeStore(ctx.snapshot.store, recover=False)
        self.ids = set(ctx.snapshot.episode_ids)

    def episodes(self, *args: Any, **filters: Any) -> list[Any]:
        return [i for i in self.store.episodes(*args, **filters) if i.episode_id in self.ids]

    def open(self, episode_id: str) -> Any:
        if episode_id not in self.ids:
            raise KeyError(f"episode {episode_id} is not in the snapshot")
        return self.store.open(episode_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


class WorldModelStage:
    """Fine-tune the action-conditioned video world model on the snapshot (WMPO §3.2, WoVR §2.2).

    Options (``CycleConfig.options["world_model"]``): any ``trainer.world_model.TrainConfig`` field (steps,
    batch_size, checkpoint_every, log_every...), ``camera``, ``finetune_from`` (a world-model folder).
    Checkpoints: ``fit_world_model`` writes ``out/world_model/checkpoint`` every ``checkpoint_every`` steps
    and resumes from it.
    """

    name = "world_model"
    queue: Queue = "gpu"
    needs: tuple[str, ...] = ()

    def run(self, ctx: StageContext) -> StageOutput:
        fit = require("trainer.world_model", "fit_world_model", "world-model training")
        from trainer.world_model import PRESETS, TrainConfig

        opts = ctx.config.stage_options(self.name)
        train = TrainConfig(**{"seed": ctx.config.seed, **options_for(TrainConfig, opts, self.name, _WM_EXTRA)})
        config = preset_of(PRESETS, ctx.config.preset, "world model")
        out = ctx.out_dir / "world_model"
        result = fit(
            snapshot_episodes(ctx, opts.get("camera")),
            out,
            config=config,
            train=train,
            finetune_from=opts.get("finetune_from"),
            resume=True,  # from out/checkpoint when a killed delivery left one
            on_log=lambda step, loss: ctx.report(step, train.steps, loss=loss),
            progress=False,
        )
        ctx.report(train.steps, train.steps)
        metrics = {"loss": result.losses[-1][1]} if result.losses else {}
        metrics.update(steps=float(train.steps), parameters=float(result.model.num_parameters()))
        return StageOutput(artifacts={"model": ctx.relative(out)}, metrics=metrics)


_WM_EXTRA = ("camera", "finetune_from")


class RewardModelStage:
    """Fit the success classifier on the snapshot's labelled episodes and calibrate its threshold (WMPO §3.2).

    Options: any ``trainer.reward_model.RewardConfig`` field (steps, batch_size...), ``camera``. Short
    enough to run again from the start after a crash (no checkpoints).
    """

    name = "reward_model"
    queue: Queue = "gpu"
    needs: tuple[str, ...] = ()

    def run(self, ctx: StageContext) -> StageOutput:
        fit = require("trainer.reward_model", "fit_reward_model", "reward-model training")
        from trainer.reward_model import PRESETS

        opts = ctx.config.stage_options(self.name)
        base = preset_of(PRESETS, ctx.config.preset, "reward model")
        fields = options_for(type(base), opts, self.name, ("camera",))
        config = dataclasses.replace(base, **{"seed": ctx.config.seed, **fields})
        episodes = [e for e in snapshot_episodes(ctx, opts.get("camera")) if e.success is not None]
        if not episodes:
            why = "no episode of the snapshot has a success label (label them: flywheel data label)"
            raise StageError(f"reward model: {why}")
        out = ctx.out_dir / "reward_model"
        result = fit(episodes, out, config=config, on_log=lambda step, loss: ctx.report(step, config.steps, loss=loss))
        ctx.report(config.steps, config.steps)
        metrics = {"threshold": float(result.model.threshold), **numbers(result.calibration)}
        if result.losses:
            metrics["loss"] = result.losses[-1][1]
        return StageOutput(artifacts={"model": ctx.relative(out)}, metrics=metrics)


class ImaginedGRPOStage:
    """GRPO on rollouts imagined in the world model, from the snapshot's first frames and, with ``kir_share``,
    keyframes (WMPO §3.3, WoVR KIR §2.5): ``trainer.coevolution.wmpo``.

    Options: ``iterations`` (default 20), ``kir_share``, ``horizon`` (default: the longest snapshot episode),
    ``camera``, ``grpo_preset`` (``trainer.grpo.PRESETS``, default "cpu"), ``checkpoint_every`` (iterations).
    Resume: the policy is saved to the checkpoint folder every ``checkpoint_every`` iterations and a
    redelivery continues from it. Departure: the optimizer's moments are not checkpointed (``wmpo`` makes
    its own optimizer), so a resumed stage restarts Adam's averages.
    """

    name = "grpo"
    queue: Queue = "gpu"
    needs: tuple[str, ...] = ("world_model", "reward_model")

    def run(self, ctx: StageContext) -> StageOutput:
        wmpo = require("trainer.coevolution", "wmpo", "imagined GRPO")
        from trainer.coevolution import WMPOConfig, build_imagination
        from trainer.grpo import PRESETS as GRPO_PRESETS
        from trainer.reward_model import FrameRewardModel
        from trainer.world_model import PixelWorldModel
        from vla.artifact import load_artifact, read_manifest, save_artifact

        opts = ctx.config.stage_options(self.name)
        known = ("iterations", "kir_share", "horizon", "camera", "grpo_preset", "checkpoint_every")
        if set(opts) - set(known):
            raise StageError(f"grpo: unknown option(s) {sorted(set(opts) - set(known))}; known: {list(known)}")
        iterations, every = int(opts.get("iterations", 20)), int(opts.get("checkpoint_every", 5))
        grpo = preset_of(GRPO_PRESETS, str(opts.get("grpo_preset", "cpu")), "GRPO")
        kir_share = float(opts.get("kir_share", 0.0))
        cfg = WMPOConfig(grpo=grpo, iterations=iterations, kir_share=kir_share, seed=ctx.config.seed)
        task = single_task(ctx)
        horizon = int(opts.get("horizon") or max(n for _, n in ctx.snapshot.episodes))
        ckpt, state = ctx.checkpoint_dir / "policy", ctx.checkpoint_dir / "iterations.json"
        done = json.loads(state.read_text())["done"] if ctx.resume and state.is_file() and ckpt.is_dir() else 0
        policy = load_artifact(ckpt if done else ctx.config.policy)
        parent = read_manifest(ctx.config.policy)["version"]
        world_model = PixelWorldModel.load(ctx.artifact("world_model", "model"), seed=ctx.config.seed)
        reward_model = FrameRewardModel.load(ctx.artifact("reward_model", "model"))
        store = SnapshotStore(ctx)
        imagination = build_imagination(  # every snapshot episode, whichever robot recorded it
            store, task, world_model, reward_model, horizon, cfg, opts.get("camera"), robot_ids=None
        )
        last: dict[str, float] = {}

        def on_iteration(it: int, stats: dict[str, float]) -> None:
            n = done + it + 1
            last.update(numbers(stats))
            ctx.report(n, iterations, **{k: v for k, v in last.items() if k in _GRPO_SHOWN})
            if n % every == 0 and n < iterations:
                save_artifact(policy, ckpt, parent_version=parent, overwrite=True)
                state.write_text(json.dumps({"done": n}))

        wmpo(policy, imagination, cfg, on_iteration, iterations=iterations - done)
        out = ctx.out_dir / "policy"
        metrics = {k: v for k, v in last.items() if k in _GRPO_SHOWN}
        save_artifact(
            policy, out, parent_version=parent, training_run=training_run_tag(ctx.key),
            dataset_snapshot=ctx.snapshot.digest, metrics={f"grpo_{k}": v for k, v in metrics.items()}, overwrite=True,
        )  # fmt: skip
        return StageOutput(artifacts={"policy": ctx.relative(out)}, metrics=metrics)


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
    """The candidate beside its parent: success imagined in the cycle's world model from every snapshot start,
    and, where ``CycleConfig.sim_task`` is set, true success on the simulated arm through the robot-agent loop
    (``trainer.evaluate.evaluate_policy``, Wilson 95% interval).

    Options: ``group_size`` (imagined rollouts per start, default 4), ``temperature`` (imagination, default
    1.0), ``sim_temperature`` (default 0.0), ``horizon`` and ``camera`` (as for GRPO), ``max_starts`` (16).
    """

    name = "evaluate"
    queue: Queue = "gpu"
    needs: tuple[str, ...] = ("grpo", "world_model", "reward_model")

    def run(self, ctx: StageContext) -> StageOutput:
        evaluate_policy = require("trainer.evaluate", "evaluate_policy", "evaluation")
        from trainer.coevolution import WMPOConfig, build_imagination, context_len
        from trainer.imagine import ImagineConfig, imagine_rollouts
        from trainer.reward_model import FrameRewardModel
        from trainer.world_model import PixelWorldModel
        from vla.artifact import load_artifact

        opts = ctx.config.stage_options(self.name)
        known = ("group_size", "temperature", "sim_temperature", "horizon", "camera", "max_starts")
        if set(opts) - set(known):
            raise StageError(f"evaluate: unknown option(s) {sorted(set(opts) - set(known))}; known: {list(known)}")
        candidate = load_artifact(ctx.artifact("grpo", "policy"))
        parent = load_artifact(ctx.config.policy)
        world_model = PixelWorldModel.load(ctx.artifact("world_model", "model"), seed=ctx.config.seed)
        reward_model = FrameRewardModel.load(ctx.artifact("reward_model", "model"))
        horizon = int(opts.get("horizon") or max(n for _, n in ctx.snapshot.episodes))
        imagination = build_imagination(
            SnapshotStore(ctx), single_task(ctx), world_model, reward_model, horizon,
            WMPOConfig(seed=ctx.config.seed), opts.get("camera"), robot_ids=None,
        )  # fmt: skip
        starts = imagination.sampler.first_frames[: int(opts.get("max_starts", 16))]
        icfg = ImagineConfig(
            group_size=int(opts.get("group_size", 4)),
            temperature=float(opts.get("temperature", 1.0)),
            context_len=context_len(world_model),
        )
        metrics: dict[str, float] = {}
        for who, policy in (("", candidate), ("parent_", parent)):
            batch = imagine_rollouts(
                policy, world_model, reward_model, starts, icfg, imagination.camera,
                seed=ctx.config.seed, proprio_model=imagination.proprio,
            )  # fmt: skip
            metrics[f"{who}imagined_success"] = float((batch.finish_step >= 0).mean())
            ctx.report(1 if not who else 2, 2 + 2 * bool(ctx.config.sim_task), **metrics)
        metrics["imagined_gain"] = metrics["imagined_success"] - metrics["parent_imagined_success"]
        if ctx.config.sim_task and ctx.config.sim_episodes > 0:
            temperature = float(opts.get("sim_temperature", 0.0))
            for who, policy in (("", candidate), ("parent_", parent)):
                result = evaluate_policy(
                    policy, ctx.config.sim_task, ctx.config.sim_episodes, temperature=temperature, progress=False
                )
                metrics[f"{who}sim_success"] = float(result.rate)
                metrics[f"{who}sim_ci95_low"], metrics[f"{who}sim_ci95_high"] = map(float, result.ci95)
                ctx.report(3 if not who else 4, 4, **metrics)
            metrics["sim_gain"] = metrics["sim_success"] - metrics["parent_sim_success"]
        return StageOutput(metrics=metrics)


class RegisterStage:
    """Register the candidate (its manifest carrying the evaluation metrics) and point ``candidate`` at it.

    Idempotent twice over: a version whose ``training_run`` is this key is returned as is, and the
    registry itself returns the existing row for the same content.
    """

    name = "register"
    queue: Queue = "cpu"
    needs: tuple[str, ...] = ("grpo", "evaluate")

    def run(self, ctx: StageContext) -> StageOutput:
        import sqlalchemy as sa

        from data_store.registry import FLEET, Registry, policies
        from data_store.registry.models import PolicyVersion

        tag = training_run_tag(ctx.key)
        metrics = {k: float(v) for k, v in ctx.inputs["evaluate"].metrics.items()}
        registry = Registry(ctx.settings.registry_db, ctx.settings.registry_artifacts_dir)
        try:
            with registry.session() as s:
                row = s.scalar(sa.select(PolicyVersion).where(PolicyVersion.training_run == tag))
                created = row is None
                if row is None:
                    final = self.candidate_artifact(ctx, tag, metrics)
                    row, created = policies.register_policy(s, registry.artifacts, final, by="trainer", verify=_verify)
                why = f"flywheel run {ctx.run_id}"
                policies.set_alias(s, FLEET, CANDIDATE_ALIAS, row.version, by="trainer", why=why)
                candidate = {"version": row.version, "metrics": dict(row.metrics or {}), "created": created}
        except StageError:
            raise
        except Exception as e:
            raise StageError(f"register: the registry refused the candidate: {e}") from e
        finally:
            registry.close()
        ctx.report(1, 1)
        return StageOutput(metrics=metrics, info={"candidate": candidate})

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
QUEUES: tuple[Queue, ...] = ("gpu", "cpu")
