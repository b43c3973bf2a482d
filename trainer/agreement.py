"""Action-replay agreement: does imagination tell GRPO what the arm would? (issue 13)

Imagined GRPO learns from one signal: which members of a group succeed. :func:`measure` checks that signal
against the arm. From S real starts it imagines G trajectories each with the policy, as GRPO does
(``trainer.imagine.imagine_rollouts``), then replays every imagined trajectory's exact actions (those the world
model was given, after the robot's safety filter) on the simulated arm from the same scene: the episode's
recorded scene seed (``meta["seed"]``), and for a keyframe start (WoVR KIR) the episode's own recorded actions up
to the start first (MuJoCo is deterministic: a test checks that a replay reproduces what was recorded). Compared:

- **outcome agreement**: imagined success (the reward model on imagined frames) against the arm's success flag on
  the same actions, overall and by step h (success within the first h steps: how agreement decays with depth),
  and per start kind (first frames, keyframe starts);
- **advantage-sign agreement**: over the pairs of members within a group, does ``sign(r_i - r_j)`` agree? Over
  all pairs (ties included), and over the pairs that the arm separates (the real signal GRPO should follow);
- **the reward model on imagined frames** against the arm's per-step success flag: precision, recall, F1;
- **frame error by step**: the imagined frame against the arm's on the same actions (mean absolute pixel error),
  beside the error of a frame that never changes (the start's): where imagination has lost the scene.

Only episodes whose scene can be rebuilt are replayable (a simulated arm that recorded its scene seed); a physical
arm's store holds none, and :func:`measure` returns None instead of a figure. The comparison is of one action
sequence in two worlds; an imagined trajectory that ended early (its batch stopped when every member was done)
is compared on the actions it has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trainer.imagine import StartState

# success by step h, as shares of the task's horizon: where imagination drifts, agreement falls with depth
DEPTHS = (0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class ReplayTarget:
    """How to put the arm where a start is: reset to ``scene``, then send the episode's ``prefix`` actions."""

    scene: int
    prefix: np.ndarray  # float32 [s, A], the recorded actions before the start (empty for a first frame)


def replay_targets(store: Any, starts: Sequence[StartState]) -> list[ReplayTarget | None]:
    """Each start's scene and prefix from the store; None where its episode recorded no scene seed."""
    scenes: dict[str, int | None] = {}
    actions: dict[str, np.ndarray] = {}
    out: list[ReplayTarget | None] = []
    for s in starts:
        if s.episode_id not in scenes:
            seed = (store.info(s.episode_id).meta or {}).get("seed") if s.episode_id else None
            scenes[s.episode_id] = None if seed is None else int(seed)
        scene = scenes[s.episode_id]
        if scene is None:
            out.append(None)
            continue
        if s.start_step > 0 and s.episode_id not in actions:
            actions[s.episode_id] = np.asarray(store.open(s.episode_id).actions(), np.float32)
        prefix = (
            actions[s.episode_id][: s.start_step]
            if s.start_step > 0
            else np.zeros((0, s.context_actions.shape[-1]), np.float32)
        )
        out.append(ReplayTarget(scene, prefix))
    return out


def replay_on_arm(
    arm: Any, targets: Sequence[ReplayTarget], actions: np.ndarray, lengths: np.ndarray, look_at: Sequence[int] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """The arm's success flag after each replayed action, bool [N, T] (False past row i's ``lengths[i]``), and its
    camera frame after action t for each t in ``look_at``, uint8 [N, len(look_at), H, W, 3] (zeros past a row's
    length; only these ticks are rendered).

    ``arm``: a ``sim.env.MetaWorldArm`` of the task."""
    n, t_max = actions.shape[:2]
    flags = np.zeros((n, t_max), dtype=bool)
    h, w = arm.image_size
    seen = np.zeros((n, len(look_at), h, w, 3), dtype=np.uint8)
    where = {int(t): j for j, t in enumerate(look_at)}
    for i, target in enumerate(targets):
        arm.reset(target.scene)
        for a in target.prefix:
            arm.advance(a)
        for t in range(int(lengths[i])):
            arm.advance(actions[i, t])
            flags[i, t] = arm.success()
            if t in where:
                seen[i, where[t]] = arm.observe().images[arm.camera]
    return flags, seen


def frame_errors(
    imagined: np.ndarray, seen: np.ndarray, first: np.ndarray, look_at: Sequence[int], lengths: np.ndarray
) -> dict[str, float]:
    """Mean absolute pixel error (0–255) between the imagined frame after action t and the arm's, beside the error
    of simply keeping the start frame (``first``, uint8 [N, H, W, 3]: a world model that predicts no change), per t
    in ``look_at`` over the rows that reached it. Where the first exceeds the second, imagination has lost the
    scene."""
    out: dict[str, float] = {}
    for j, t in enumerate(look_at):
        rows = np.asarray(lengths) > t
        if not rows.any():
            continue
        real = seen[rows, j].astype(np.float32)
        out[f"frame_error_by_step_{t + 1}"] = float(np.abs(imagined[rows, t].astype(np.float32) - real).mean())
        out[f"frame_error_unchanged_by_step_{t + 1}"] = float(np.abs(first[rows].astype(np.float32) - real).mean())
    return out


def replay_arm(task: str, imagination: Any) -> Any:
    """A ``sim.env.MetaWorldArm`` of ``task`` that renders what imagination draws (the world model's frame size,
    the episodes' camera): ValueError for a camera the simulator lacks."""
    from sim.env import MetaWorldArm

    h, w = (int(x) for x in imagination.world_model.image_size)
    return MetaWorldArm(task, camera=imagination.camera, image_size=(h, w))


def unit_of(figure: str) -> str:
    """The unit of one of :func:`figures`' or :func:`reward_figures`' names."""
    if figure.startswith("frame_error"):
        return "pixel (0-255)"
    return "count" if figure in ("trajectories", "separated_pairs", "reward_positives") else "fraction"


def first_true(flags: np.ndarray) -> np.ndarray:
    """Index of the first True per row, int64 [N]; -1 where none."""
    hit = flags.any(axis=1)
    return np.where(hit, flags.argmax(axis=1), -1).astype(np.int64)


def pair_agreement(imagined: np.ndarray, real: np.ndarray, group: int) -> tuple[float, float, int]:
    """Over the pairs of members within each group of ``group`` consecutive rows: the share whose order
    ``sign(r_i - r_j)`` is the same in imagination and on the arm, over all pairs and over the pairs the arm
    separates (nan where it separates none). Returns (all, separated, number of separated pairs)."""
    a = np.asarray(imagined, float).reshape(-1, group)
    b = np.asarray(real, float).reshape(-1, group)
    i, j = np.triu_indices(group, k=1)
    sa, sb = np.sign(a[:, i] - a[:, j]), np.sign(b[:, i] - b[:, j])
    same, sep = sa == sb, sb != 0
    n_sep = int(sep.sum())
    return (
        float(same.mean()) if same.size else float("nan"),
        float(same[sep].mean()) if n_sep else float("nan"),
        n_sep,
    )


def figures(
    imagined_step: np.ndarray,  # int64 [N]: imagined first success step, -1 none
    real_step: np.ndarray,  # int64 [N]: the arm's first success step on the same actions, -1 none
    steps_left: np.ndarray,  # int64 [N]: each trajectory's step budget
    group: int,
    horizon: int,
) -> dict[str, float]:
    """The agreement figures of N = S·G replayed trajectories (pure)."""
    im = (imagined_step >= 0) & (imagined_step < steps_left)
    re = (real_step >= 0) & (real_step < steps_left)
    out = {
        "outcome_agreement": float((im == re).mean()),
        "imagined_success": float(im.mean()),
        "replayed_success": float(re.mean()),
        "false_success": float((im & ~re).mean()),  # imagination says success, the arm does not
        "missed_success": float((~im & re).mean()),
        "trajectories": float(len(im)),
    }
    allp, sep, n_sep = pair_agreement(im, re, group)
    out["advantage_sign_agreement"] = allp
    out["advantage_sign_agreement_separated"] = sep
    out["separated_pairs"] = float(n_sep)
    out["groups_mixed_imagined"] = float(_mixed(im, group).mean())
    out["groups_mixed_replayed"] = float(_mixed(re, group).mean())
    for share in DEPTHS:
        h = max(1, round(share * horizon))
        im_h = (imagined_step >= 0) & (imagined_step < np.minimum(steps_left, h))
        re_h = (real_step >= 0) & (real_step < np.minimum(steps_left, h))
        out[f"outcome_agreement_by_step_{h}"] = float((im_h == re_h).mean())
    return out


def _mixed(outcomes: np.ndarray, group: int) -> np.ndarray:
    g = np.asarray(outcomes, bool).reshape(-1, group)
    return np.asarray(g.any(axis=1) & ~g.all(axis=1))


def reward_figures(scores: np.ndarray, threshold: float, flags: np.ndarray, lengths: np.ndarray) -> dict[str, float]:
    """The reward model's verdict on each imagined frame (``scores`` float [N, T] >= threshold) against the arm's
    success flag after the same action (``flags`` bool [N, T]), over each row's first ``lengths[i]`` frames."""
    from trainer.reward_model import prf

    valid = np.arange(flags.shape[1])[None, :] < np.asarray(lengths)[:, None]
    m = prf(np.asarray(scores)[valid] >= threshold, flags[valid])
    return {f"reward_{k}": float(v) for k, v in m.items() if k in ("precision", "recall", "f1", "positives")}


@dataclass(frozen=True)
class Agreement:
    """What :func:`measure` found: figures overall and per start kind (``first_frame``, ``keyframe``)."""

    figures: dict[str, float]
    by_kind: dict[str, dict[str, float]]
    skipped: int  # starts whose scene could not be rebuilt

    def metrics(self, prefix: str = "agreement_") -> dict[str, float]:
        """Flat ``{name: value}`` for a stage's record, per kind as ``<prefix><kind>_<name>``."""
        out = {f"{prefix}{k}": v for k, v in self.figures.items()}
        for kind, figs in self.by_kind.items():
            for k in ("outcome_agreement", "advantage_sign_agreement", "trajectories"):
                out[f"{prefix}{kind}_{k}"] = figs[k]
        return {k: v for k, v in out.items() if v == v}  # no nan

    def line(self) -> str:
        f = self.figures
        sep, f1 = f["advantage_sign_agreement_separated"], f.get("reward_f1", float("nan"))
        return (
            f"action-replay agreement over {int(f['trajectories'])} imagined trajectories: outcome "
            f"{f['outcome_agreement']:.2f} (imagined {f['imagined_success']:.0%} vs replayed "
            f"{f['replayed_success']:.0%}), advantage sign {f['advantage_sign_agreement']:.2f} (on the pairs the "
            f"arm separates: {sep:.2f}), reward model F1 {f1:.2f}"
        )


def measure(
    policy: Any,
    imagination: Any,  # trainer.coevolution.Imagination
    starts: Sequence[StartState],
    store: Any,
    arm: Any,  # a sim.env.MetaWorldArm of the starts' task
    temperature: float,
    group: int,
    horizon: int,
    seed: int = 0,
) -> Agreement | None:
    """Imagine ``group`` rollouts of ``policy`` from each replayable start, replay their actions on ``arm``, and
    compare (see the module docstring). None when no start can be replayed."""
    targets = replay_targets(store, starts)
    keep = [i for i, t in enumerate(targets) if t is not None]
    if not keep:
        return None
    kept_starts = [starts[i] for i in keep]
    batch = imagination.imagine(policy, kept_starts, temperature, group, seed)
    assert batch.actions is not None
    rows = [targets[i] for i in keep for _ in range(group)]  # group members are consecutive
    steps_left = np.array([s.steps_left for s in batch.starts], dtype=np.int64)
    lengths = np.minimum(steps_left, batch.actions.shape[1])
    look_at = sorted({min(batch.actions.shape[1], max(1, round(share * horizon))) - 1 for share in DEPTHS})
    flags, seen = replay_on_arm(arm, [r for r in rows if r is not None], batch.actions, lengths, look_at)
    real_step = first_true(flags)
    figs = figures(batch.finish_step, real_step, steps_left, group, horizon)
    first = np.stack([s.context_frames[-1] for s in batch.starts])
    if seen.shape[2:] == batch.frames.shape[2:]:  # an arm that renders another size or camera: no pixel comparison
        figs.update(frame_errors(batch.frames, seen, first, look_at, lengths))
    rm = imagination.reward_model
    figs.update(reward_figures(rm.score(batch.frames), float(rm.threshold), flags, lengths))
    kind = np.array(["first_frame" if s.start_step == 0 else "keyframe" for s in kept_starts])
    by_kind = {}
    for k in ("first_frame", "keyframe"):
        sel = np.repeat(kind == k, group)
        if sel.any():
            by_kind[k] = figures(batch.finish_step[sel], real_step[sel], steps_left[sel], group, horizon)
    return Agreement(figs, by_kind, len(starts) - len(keep))
