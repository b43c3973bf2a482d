"""The small interface every stage of the flywheel cycle implements, and the cycle's configuration.

A cycle is: snapshot the episodes, then the stages of a *stage table* (``stages.py`` holds the real
one) in the order their ``needs`` allow: world model ∥ reward model → imagined GRPO → evaluate →
register. A stage is a plain object with a name, a queue (``gpu`` or ``cpu``), the stages it needs,
and ``run(ctx) -> StageOutput``. It writes only under ``ctx.out_dir`` and ``ctx.checkpoint_dir``; the
pipeline marks it done by writing ``done.json`` after ``run`` returns, so a stage that returned is
never run again for the same (dataset snapshot, config) key, and a stage that was killed finds its
checkpoints on the next delivery (``ctx.resume``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from trainer.service.settings import ServiceSettings
    from trainer.service.snapshot import Snapshot

Queue = Literal["gpu", "cpu"]


class StageError(RuntimeError):
    """The run cannot go on, for a reason a person can act on (bad input, a missing artifact).

    The message is the reason shown in ``flywheel train status``; it is never retried.
    """


class StageUnavailable(StageError):
    """The code a stage needs is not installed or not written yet: the run fails with what is missing."""


@dataclass(frozen=True)
class CycleConfig:
    """What one cycle trains on and how. Its hash, with the snapshot's, keys the cycle's work.

    The training settings are a named recipe (``trainer.recipe.RECIPES``) with ``overrides`` of its fields, the
    same recipe ``flywheel bench paper`` measures; ``seed`` is the recipe's seed. ``options`` are for a custom
    stage table's own stages (and the shipped stages' bookkeeping: ``checkpoint_every``, ``log_every``,
    ``camera``), never for the recipe."""

    policy: str = ""  # the policy to improve: a policy artifact directory (or a registry reference)
    task: str | None = None  # train on this task's episodes only; None: every complete episode
    recipe: str = "default"  # trainer.recipe.RECIPES
    overrides: Mapping[str, Any] = field(default_factory=dict)  # recipe fields, e.g. {"iterations": 4}
    sim_task: str | None = None  # judge the candidate in the simulator too (Meta-World task name)
    sim_episodes: int = 0  # seeded validation scenes for that judgement
    continue_from: str = ""  # a previous run id (or "last"): fine-tune its world and reward models (co-evolution)
    seed: int = 0
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # stage name -> keyword arguments

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["options"] = {k: dict(v) for k, v in self.options.items()}
        d["overrides"] = dict(self.overrides)
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CycleConfig:
        """TypeError naming what is not a field (an old config's ``preset``, a typo)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            hint = '; the model sizes are a recipe now: "recipe": "default" | "quick"' if "preset" in d else ""
            raise TypeError(f"unknown cycle setting(s) {unknown}{hint}")
        return cls(
            **{
                **d,
                "options": {k: dict(v) for k, v in d.get("options", {}).items()},
                "overrides": dict(d.get("overrides", {})),
            }
        )

    def digest(self) -> str:
        """sha256 of the canonical JSON: the "config hash" half of the idempotency key."""
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()

    def stage_options(self, stage: str) -> dict[str, Any]:
        return dict(self.options.get(stage, {}))

    def resolved_recipe(self) -> Any:
        """The ``trainer.recipe.Recipe`` this cycle runs: the named preset, the overrides, the seed.
        ValueError naming an unknown recipe or setting."""
        from trainer.recipe import recipe

        return recipe(self.recipe, **{**dict(self.overrides), "seed": self.seed})


@dataclass(frozen=True)
class StageOutput:
    """What a finished stage leaves for the stages after it: files (relative to the work folder) and metrics."""

    artifacts: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    info: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"artifacts": dict(self.artifacts), "metrics": dict(self.metrics), "info": dict(self.info)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> StageOutput:
        return cls(artifacts=dict(d["artifacts"]), metrics=dict(d["metrics"]), info=dict(d.get("info", {})))


Report = Callable[..., None]  # report(step, total=None, **metrics)


@dataclass(frozen=True)
class StageContext:
    """Everything a stage may use. Paths are on the shared store, so any worker can pick the stage up."""

    run_id: str
    key: str  # the idempotency key: (snapshot hash, config hash)
    stage: str
    config: CycleConfig
    snapshot: Snapshot
    settings: ServiceSettings
    work_dir: Path  # work/<key>: every stage's folder lives under it
    inputs: Mapping[str, StageOutput]  # outputs of the stages named in ``needs``
    report: Report
    resume: bool  # an earlier, interrupted delivery left files (checkpoints, partial outputs) in this stage's folder

    @property
    def out_dir(self) -> Path:
        return self.work_dir / self.stage / "out"

    @property
    def checkpoint_dir(self) -> Path:
        return self.work_dir / self.stage / "checkpoints"

    def artifact(self, stage: str, name: str) -> Path:
        """The absolute path of a file an earlier stage produced; StageError when it is gone."""
        out = self.inputs.get(stage)
        if out is None or name not in out.artifacts:
            raise StageError(f"{self.stage}: stage {stage!r} left no artifact {name!r}")
        path = self.work_dir / out.artifacts[name]
        if not path.exists():
            raise StageError(f"{self.stage}: missing artifact {path} (from stage {stage!r})")
        return path

    def relative(self, path: Path) -> str:
        """A path under the work folder, as stored in StageOutput.artifacts."""
        return str(Path(path).resolve().relative_to(self.work_dir.resolve()))


class Stage(Protocol):
    """One step of the cycle. ``run`` must be safe to call again after a crash (resume from checkpoints)."""

    name: str
    queue: Queue
    needs: tuple[str, ...]

    def run(self, ctx: StageContext) -> StageOutput: ...


def stage_levels(stages: Mapping[str, Stage]) -> list[list[str]]:
    """The stages grouped so that each group needs only earlier groups: [[world_model, reward_model], [grpo], ...]."""
    done: set[str] = set()
    levels: list[list[str]] = []
    left = dict(stages)
    while left:
        ready = [name for name, s in left.items() if all(n in done for n in s.needs)]
        if not ready:
            raise ValueError(f"stage table: unknown or circular needs among {sorted(left)}")
        levels.append(ready)
        done.update(ready)
        for name in ready:
            del left[name]
    return levels
