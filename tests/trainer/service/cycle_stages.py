"""A stage table for testing the trainer service's machinery, not learning: small real computations on
the snapshot's episodes, checkpointed, and paced (``pace_s`` per step) so that a test can kill a worker
in the middle of a stage on any machine. The shipped table is ``trainer.service.stages.STAGES``; only the
register stage here is the real one (the real registry).

Each stage appends what it did to ``<work>/executions.jsonl`` (stage, pid, first and last step), so a
test can tell work done from work skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from data_store.episodes import EpisodeStore
from trainer.service.stage import Queue, StageContext, StageOutput
from trainer.service.stages import RegisterStage, require


def log_execution(ctx: StageContext, **fields: Any) -> None:
    with (ctx.work_dir / "executions.jsonl").open("a") as f:
        f.write(json.dumps({"stage": ctx.stage, "pid": os.getpid(), "run_id": ctx.run_id, **fields}) + "\n")


def executions(work_dir: Path) -> list[dict[str, Any]]:
    path = work_dir / "executions.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def transitions(ctx: StageContext) -> tuple[np.ndarray, np.ndarray]:
    """(state_t, action_t) -> state_{t+1} over the snapshot: float64 [N, S+A], [N, S]."""
    store = EpisodeStore(ctx.snapshot.store, recover=False)
    xs, ys = [], []
    for episode_id in ctx.snapshot.episode_ids:
        r = store.open(episode_id)
        s, a = r.states().astype(np.float64), r.actions().astype(np.float64)
        xs.append(np.concatenate([s[:-1], a[:-1]], axis=1))
        ys.append(s[1:])
    return np.concatenate(xs), np.concatenate(ys)


class DynamicsFit:
    """The world-model slot: a linear next-state model fitted by gradient descent, checkpointed every k steps."""

    name = "world_model"
    queue: Queue = "gpu"
    needs: tuple[str, ...] = ()

    def run(self, ctx: StageContext) -> StageOutput:
        opts = ctx.config.stage_options(self.name)
        steps, pace, every = int(opts.get("steps", 20)), float(opts.get("pace_s", 0.0)), int(opts.get("every", 4))
        x, y = transitions(ctx)
        w, start = np.zeros((x.shape[1], y.shape[1])), 0
        ckpt = ctx.checkpoint_dir / "dynamics.safetensors"
        if ckpt.is_file():
            w, start = load_file(str(ckpt))["w"], int(json.loads((ctx.checkpoint_dir / "step.json").read_text()))
        log_execution(ctx, event="start", from_step=start)
        loss = float("nan")
        for step in range(start, steps):
            err = x @ w - y
            loss = float((err**2).mean())
            w = w - 0.05 * x.T @ err / len(x)
            time.sleep(pace)
            if (step + 1) % every == 0:
                save_file({"w": w}, str(ckpt))
                (ctx.checkpoint_dir / "step.json").write_text(json.dumps(step + 1))
            ctx.report(step + 1, steps, loss=loss)
        save_file({"w": w}, str(ctx.out_dir / "dynamics.safetensors"))
        log_execution(ctx, event="end", to_step=steps)
        model = ctx.relative(ctx.out_dir / "dynamics.safetensors")
        return StageOutput(artifacts={"model": model}, metrics={"loss": loss})


class SuccessFit:
    """The reward-model slot: logistic regression of the success label on the last state."""

    name = "reward_model"
    queue: Queue = "gpu"
    needs: tuple[str, ...] = ()

    def run(self, ctx: StageContext) -> StageOutput:
        opts = ctx.config.stage_options(self.name)
        steps, pace = int(opts.get("steps", 20)), float(opts.get("pace_s", 0.0))
        log_execution(ctx, event="start", from_step=0)
        store = EpisodeStore(ctx.snapshot.store, recover=False)
        feats, labels = [], []
        for episode_id in ctx.snapshot.episode_ids:
            r = store.open(episode_id)
            feats.append(np.append(r.states()[-1].astype(np.float64), 1.0))
            labels.append(1.0 if r.info.success == "true" else 0.0)
        x, t = np.stack(feats), np.array(labels)
        w = np.zeros(x.shape[1])
        for step in range(steps):
            p = 1.0 / (1.0 + np.exp(-x @ w))
            w -= 0.5 * x.T @ (p - t) / len(t)
            time.sleep(pace)
            ctx.report(step + 1, steps, accuracy=float(((p > 0.5) == (t > 0.5)).mean()))
        save_file({"w": w}, str(ctx.out_dir / "success.safetensors"))
        accuracy = float((((x @ w) > 0) == (t > 0.5)).mean())
        log_execution(ctx, event="end", to_step=steps)
        model = ctx.relative(ctx.out_dir / "success.safetensors")
        return StageOutput(artifacts={"model": model}, metrics={"accuracy": accuracy})


class NudgedPolicy:
    """The GRPO slot: the parent policy with its weights moved by a small step seeded by the key."""

    name = "grpo"
    queue: Queue = "gpu"
    needs: tuple[str, ...] = ("world_model", "reward_model")

    def run(self, ctx: StageContext) -> StageOutput:
        from vla.manifest import read_manifest, write_manifest

        log_execution(ctx, event="start", from_step=0)
        out = ctx.out_dir / "policy"
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(ctx.config.policy, out)
        rng = np.random.default_rng(int(ctx.key[:8], 16))
        tensors = load_file(str(out / "model.safetensors"))
        nudged = {k: (v + 0.01 * rng.standard_normal(v.shape)).astype(v.dtype) for k, v in tensors.items()}
        save_file(nudged, str(out / "model.safetensors"))
        parent = read_manifest(out)
        write_manifest(
            out, parent_version=parent["version"], training_run=None, dataset_snapshot=ctx.snapshot.digest,
            metrics={}, robot_spec=parent.get("robot_spec"), created_at=str(parent.get("created_at")),
        )  # fmt: skip
        ctx.report(1, 1)
        log_execution(ctx, event="end", to_step=1)
        return StageOutput(artifacts={"policy": ctx.relative(out)}, metrics={"step_norm": 0.01})


class HeldOutScores:
    """The evaluate slot: the dynamics model's one-step error and the success model's accuracy."""

    name = "evaluate"
    queue: Queue = "gpu"
    needs: tuple[str, ...] = ("grpo", "world_model", "reward_model")

    def run(self, ctx: StageContext) -> StageOutput:
        log_execution(ctx, event="start", from_step=0)
        x, y = transitions(ctx)
        w = load_file(str(ctx.artifact("world_model", "model")))["w"]
        mse = float(((x @ w - y) ** 2).mean())
        ctx.artifact("grpo", "policy")
        ctx.report(1, 1, dynamics_mse=mse)
        log_execution(ctx, event="end", to_step=1)
        accuracy = ctx.inputs["reward_model"].metrics["accuracy"]
        # the gate, as the real evaluation stage leaves it: promote unless the options ask for a bar not met
        bar = float(ctx.config.stage_options(self.name).get("promote_if_mse_below", float("inf")))
        promote = mse < bar
        reason = f"dynamics mse {mse:.4g} {'<' if promote else '>='} {bar:g}"
        info = {"promote": promote, "reason": reason}
        return StageOutput(metrics={"dynamics_mse": mse, "success_accuracy": accuracy}, info=info)


class NotWrittenYet(NudgedPolicy):
    """The GRPO slot filled by a trainer module that does not exist: the run must fail saying so."""

    def run(self, ctx: StageContext) -> StageOutput:
        require("trainer.not_written_yet", "train", "imagined GRPO")
        raise AssertionError("require() returned a function from a module that does not exist")


STAGES = {s.name: s for s in (DynamicsFit(), SuccessFit(), NudgedPolicy(), HeldOutScores(), RegisterStage())}
MISSING_GRPO = {**STAGES, "grpo": NotWrittenYet()}
