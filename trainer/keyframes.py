"""Keyframe-Initialized Rollouts (WoVR, arXiv 2602.13977): find task-critical moments in the
store's real episodes and start imagined rollouts just before them.

A keyframe is a step of a real episode where the outcome is decided:

- ``grasp``: the gripper closes or opens (the gripper command changes sign, or the gripper reading moves
  by more than ``gripper_change`` within a few steps);
- ``contact``: the hand meets resistance, i.e. it is commanded to move but moves much less than it does
  in free space (realised/commanded displacement falls below ``contact_ratio`` of the episode's median);
- ``divergence``: where a failed episode parts from the nearest successful one from a similar start
  (nearest by first-frame pixels and start state): the first step after which the failed hand stays
  farther than ``divergence_dist`` from the successful hand's whole path for ``persist`` steps; a failure
  that never leaves the path but stalls on it gets the step where it stopped making progress along it.

A KIR start (``trainer.imagine.StartState``) begins ``before`` steps ahead of the keyframe; its world-model
context is the episode's first frame (the reference) plus the ``memory`` real frames ending at the start
step, and the real actions that led into them (WoVR ``traj*_kir.npy``: a reference frame plus 4
pre-keyframe frames and their actions). The prefix is context, not a policy decision: not in the loss.

Departures: WoVR's selection code is not public (not in RLinf, where WoVR's code lives); the rules above are ours,
built from what the paper names (contacts, failure states). Object-motion onset needs object poses, which
our proprio (hand xyz + gripper) does not carry: pass ``object_dims`` when the state has them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trainer.imagine import StartState


@dataclass(frozen=True)
class Keyframe:
    episode_id: str
    step: int  # the task-critical step
    kind: str  # "grasp" | "contact" | "divergence" | "stall" | "object_motion"


@dataclass(frozen=True)
class KeyframeConfig:
    memory: int = 4  # memory frames before the start (WoVR: 4), plus the reference first frame
    before: int = 3  # start this many steps ahead of the keyframe
    gripper_dim: int = 3  # index of the gripper in state and action (Meta-World: xyz + gripper)
    gripper_change: float = 0.15  # of the gripper reading's range in the episode, within `window` steps
    window: int = 3
    contact_ratio: float = 0.3  # realised / commanded hand motion below this share of the median: contact
    min_command: float = 0.2  # only steps with a clear xyz command count for contact
    divergence_dist: float = 0.04  # metres of hand position (Meta-World state units)
    persist: int = 5  # steps the failure must stay off the successful path
    min_gap: int = 8  # keyframes of one episode closer than this are merged (keep the first)
    # keyframes in the first chunk are dropped: a start there is the first frame again (WMPO's start). The
    # base's first gripper command flips sign at step 0-1 in most drawer-close episodes: 128 of 289 "grasps"
    min_step: int = 8
    object_dims: tuple[int, ...] = ()  # state indices of an object position, where the state has them


# ------------------------------------------------------------------ detectors on one episode (pure)


def grasp_steps(states: np.ndarray, actions: np.ndarray, cfg: KeyframeConfig) -> list[int]:
    """Steps where the gripper is commanded to close or open, or its reading starts to move.

    A command change counts when the new sign then holds for ``window`` steps (noise around zero is not a
    grasp); a reading change counts at the onset of a run of steps that each move it by more than
    ``gripper_change`` of its range over ``window`` steps. ``states`` float32 [T, S], ``actions`` float32 [T, A]."""
    g, w = cfg.gripper_dim, cfg.window
    steps: list[int] = []
    if actions.shape[1] > g and len(actions) >= w:
        sign = np.sign(actions[:, g])
        held = np.array([sign[t] if (sign[t : t + w] == sign[t]).all() else 0.0 for t in range(len(sign) - w + 1)])
        last = 0.0
        for t, v in enumerate(held):
            if v != 0 and last != 0 and v != last:
                steps.append(t)
            if v != 0:
                last = v
    if states.shape[1] > g and len(states) > w:
        reading = states[:, g]
        span = float(reading.max() - reading.min())
        if span > 1e-6:
            moving = np.abs(reading[w:] - reading[:-w]) / span > cfg.gripper_change
            steps += _onsets(moving)
    return sorted(set(steps))


def _onsets(flags: np.ndarray) -> list[int]:
    """First indices of runs of True."""
    return [int(t) for t in np.nonzero(flags & ~np.concatenate([[False], flags[:-1]]))[0]]


def contact_steps(states: np.ndarray, actions: np.ndarray, cfg: KeyframeConfig) -> list[int]:
    """First steps of runs where the hand moves much less than commanded (it has met something)."""
    if len(states) < 3:
        return []
    commanded = np.linalg.norm(actions[:-1, :3], axis=1)
    realised = np.linalg.norm(states[1:, :3] - states[:-1, :3], axis=1)
    moving = commanded > cfg.min_command
    if moving.sum() < 3:
        return []
    ratio = np.where(moving, realised / np.maximum(commanded, 1e-6), np.nan)
    free = float(np.nanmedian(ratio))
    onsets = _onsets(moving & (ratio < cfg.contact_ratio * free))
    return [t for t in onsets if t >= cfg.window]  # the first steps are the hand accelerating, not contact


def object_motion_onset(states: np.ndarray, cfg: KeyframeConfig, eps: float = 0.005) -> list[int]:
    """The first step the object moves (only where the state carries the object's position)."""
    if not cfg.object_dims or states.shape[1] <= max(cfg.object_dims):
        return []
    obj = states[:, list(cfg.object_dims)]
    moved = np.nonzero(np.linalg.norm(obj - obj[0], axis=1) > eps)[0]
    return [int(moved[0])] if len(moved) else []


def divergence_step(failed: np.ndarray, success: np.ndarray, cfg: KeyframeConfig) -> tuple[int, str] | None:
    """Where a failed hand path (float [T, 3]) parts from a successful one (float [T', 3]).

    Distances are to the successful *path* (nearest point), so a slower or faster failure is not
    mistaken for a divergence. Returns (step, "divergence") or (step, "stall") or None."""
    if len(failed) < cfg.persist + 1 or len(success) < 2:
        return None
    d = np.linalg.norm(failed[:, None, :] - success[None, :, :], axis=2)  # [T, T']
    off_path = d.min(axis=1) > cfg.divergence_dist
    run = np.convolve(off_path.astype(int), np.ones(cfg.persist, int), mode="valid")  # [T - persist + 1]
    out = np.nonzero(run == cfg.persist)[0]
    if len(out):
        return int(out[0]), "divergence"
    progress = np.maximum.accumulate(d.argmin(axis=1))  # furthest point reached along the successful path
    if progress[-1] >= len(success) - 1:
        return None  # followed the whole path: nothing to blame on the path
    stalled_at = int(np.argmax(progress == progress[-1]))
    if stalled_at > len(failed) - 1 - cfg.persist:
        return None  # still progressing when the episode ended: too late to call it a stall
    return stalled_at, "stall"


def merge_close(steps: Sequence[tuple[int, str]], min_gap: int) -> list[tuple[int, str]]:
    """Keyframes closer than ``min_gap`` steps are one moment; a divergence or stall wins (it names the
    failure), otherwise the earliest."""
    rank = {"divergence": 0, "stall": 0}
    kept: list[tuple[int, str]] = []
    for t, kind in sorted(steps):
        if kept and t - kept[-1][0] < min_gap:
            if rank.get(kind, 1) < rank.get(kept[-1][1], 1):
                kept[-1] = (t, kind)
            continue
        kept.append((t, kind))
    return kept


# ----------------------------------------------------------------------------------- from the store


@dataclass
class _Episode:
    episode_id: str
    success: bool
    states: np.ndarray  # [T, S]
    actions: np.ndarray  # [T, A]
    first_frame: np.ndarray  # [H, W, 3]


def complete_episodes(store: Any, task: str | None, robot_ids: tuple[str, ...] | None = None) -> list[Any]:
    """EpisodeInfo of the complete episodes of ``task``, from the given robots only (None: all)."""
    infos = store.episodes(task=task, status="complete")
    return [i for i in infos if robot_ids is None or i.robot_id in robot_ids]


def _load(store: Any, task: str | None, camera: str | None, robot_ids: tuple[str, ...] | None) -> list[_Episode]:
    episodes = []
    for info in complete_episodes(store, task, robot_ids):
        if info.success == "unknown" or info.length < 2:
            continue
        r = store.open(info.episode_id)
        cam = camera or next(iter(r.spec.cameras))
        episodes.append(_Episode(info.episode_id, info.success == "true", r.states(), r.actions(), r.images(cam)[0]))
    return episodes


def find_keyframes(
    store: Any,
    task: str | None = None,
    cfg: KeyframeConfig = KeyframeConfig(),
    camera: str | None = None,
    robot_ids: tuple[str, ...] | None = None,
) -> list[Keyframe]:
    """All keyframes of the store's complete, labelled episodes of ``task`` (EpisodeStore in, list out)."""
    episodes = _load(store, task, camera, robot_ids)
    successes = [e for e in episodes if e.success]
    keyframes: list[Keyframe] = []
    for e in episodes:
        found: list[tuple[int, str]] = []
        found += [(t, "grasp") for t in grasp_steps(e.states, e.actions, cfg)]
        found += [(t, "contact") for t in contact_steps(e.states, e.actions, cfg)]
        found += [(t, "object_motion") for t in object_motion_onset(e.states, cfg)]
        if not e.success and successes:
            nearest = min(successes, key=lambda s: _start_distance(e, s))
            div = divergence_step(e.states[:, :3], nearest.states[:, :3], cfg)
            if div is not None:
                found.append(div)
        found = [(t, kind) for t, kind in found if t >= cfg.min_step]
        keyframes += [Keyframe(e.episode_id, t, kind) for t, kind in merge_close(found, cfg.min_gap)]
    return keyframes


def _start_distance(a: _Episode, b: _Episode) -> float:
    """Similar starts: first frames (pixels, scaled to [0, 1]) and start states."""
    pix = float(np.mean(np.abs(a.first_frame.astype(np.float32) - b.first_frame.astype(np.float32)))) / 255.0
    return pix + float(np.linalg.norm(a.states[0] - b.states[0]))


def keyframe_start(
    frames: np.ndarray,  # uint8 [T, H, W, 3] of the episode
    states: np.ndarray,  # float32 [T, S]
    actions: np.ndarray,  # float32 [T, A]
    keyframe: Keyframe,
    instruction: str,
    horizon: int,
    cfg: KeyframeConfig = KeyframeConfig(),
) -> StartState:
    """A KIR start ``before`` steps ahead of the keyframe: reference frame + ``memory`` frames as context."""
    s = int(np.clip(keyframe.step - cfg.before, 0, len(frames) - 1))
    idx = np.clip(np.arange(s - cfg.memory + 1, s + 1), 0, None)  # memory frames ending at the start step
    context = np.concatenate([frames[:1], frames[idx]], axis=0)  # [1 + memory, H, W, 3]
    # the action that led into memory frame i is action[idx_i - 1]; none before step 0 (a no-op)
    led = idx - 1
    context_actions = np.where((led >= 0)[:, None], actions[np.clip(led, 0, None)], 0.0).astype(np.float32)
    return StartState(
        context_frames=context,
        context_actions=context_actions,
        state=states[s].astype(np.float32),
        instruction=instruction,
        steps_left=max(1, horizon - s),
        episode_id=keyframe.episode_id,
        start_step=s,
        kind=keyframe.kind,
    )
