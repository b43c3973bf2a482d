"""The real stage table: each stage adapts one trainer function to the ``Stage`` interface.

A stage whose trainer function is not importable fails the run with ``StageUnavailable`` naming
what is missing; nothing stands in for it. The adapters ask nothing of the trainers beyond their
public functions: the episodes to train on (``ctx.snapshot``), an output folder, a checkpoint
folder with ``resume``, and a progress callback.
"""

from __future__ import annotations

import importlib
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


class WorldModelStage:
    """Fine-tune the action-conditioned video world model on the snapshot (WMPO §3.1, WoVR §3)."""

    name = "world_model"
    queue: Queue = "gpu"
    needs: tuple[str, ...] = ()

    def run(self, ctx: StageContext) -> StageOutput:
        require("trainer.world_model", "train_world_model", "world-model training")
        raise StageUnavailable("world-model training: the service does not call train_world_model yet")


class RewardModelStage:
    """Fit the success classifier on the snapshot's labelled episodes (WMPO §3.2)."""

    name = "reward_model"
    queue: Queue = "gpu"
    needs: tuple[str, ...] = ()

    def run(self, ctx: StageContext) -> StageOutput:
        require("trainer.reward_model", "train_reward_model", "reward-model training")
        raise StageUnavailable("reward-model training: the service does not call train_reward_model yet")


class ImaginedGRPOStage:
    """GRPO on rollouts imagined in the world model, from real keyframes (WMPO §3.3, WoVR KIR)."""

    name = "grpo"
    queue: Queue = "gpu"
    needs: tuple[str, ...] = ("world_model", "reward_model")

    def run(self, ctx: StageContext) -> StageOutput:
        require("trainer.grpo", "train_grpo", "imagined GRPO")
        raise StageUnavailable("imagined GRPO: the service does not call train_grpo yet")


class EvaluateStage:
    """Score the candidate against its parent in imagination and, where configured, the simulator."""

    name = "evaluate"
    queue: Queue = "gpu"
    needs: tuple[str, ...] = ("grpo", "world_model", "reward_model")

    def run(self, ctx: StageContext) -> StageOutput:
        require("trainer.evaluate", "evaluate_policy", "evaluation")
        raise StageUnavailable("evaluation: the service does not call evaluate_policy yet")


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
