"""KIR keyframes (trainer/keyframes.py) found in real recorded episodes of the simulated arm.

Episodes are recorded into a real Zarr store: the scripted expert (successes) and a heavily perturbed
expert (failures) on pick-place, where the expert grasps the puck, so grasp moments exist to be found.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainer import keyframes as kf

pytestmark = pytest.mark.slow  # records 4 real episodes (~20 s on 2 idle cores)

TASK = "pick-place"
MAX_STEPS = 60


def _record(store: object, seed: int, noise: float) -> str:
    from sim.env import MetaWorldArm
    from sim.experts import ScriptedExpert

    with MetaWorldArm(TASK, max_steps=MAX_STEPS) as arm:
        expert = ScriptedExpert(TASK, noise=noise, seed=seed)
        obs = arm.reset(seed)
        with store.create(arm.spec, task=TASK, instruction=arm.instruction, meta={"seed": seed}) as w:  # type: ignore[attr-defined]
            while not arm.truncated:
                action = expert.act(arm.raw_observation())
                w.append(obs, action)
                obs = arm.step(action)
                if arm.success():
                    break
            w.finish(arm.success())
            return str(w.episode_id)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> object:
    from data_store.episodes import EpisodeStore

    s = EpisodeStore(Path(tmp_path_factory.mktemp("kir")) / "store")
    for seed in (1, 2):
        _record(s, seed, noise=0.05)
    for seed in (1, 3):
        _record(s, seed, noise=1.0)  # the expert drowned in noise: fails within MAX_STEPS
    return s


def test_detectors_on_real_episodes(store: object) -> None:
    infos = store.episodes(task=TASK)  # type: ignore[attr-defined]
    assert len(infos) == 4
    grasps = 0
    for info in infos:
        r = store.open(info.episode_id)  # type: ignore[attr-defined]
        states, actions = r.states(), r.actions()
        steps = kf.grasp_steps(states, actions, kf.KeyframeConfig())
        assert all(0 <= t < len(states) for t in steps)
        if info.success == "true":
            grasps += bool(steps)
            # the expert closes its gripper on the puck: the gripper command turns from open to close
            closes = [t for t in steps if actions[t, 3] > 0 and actions[t - 1, 3] <= 0]
            assert closes, f"no gripper closing found in a successful pick-place episode: {steps}"
    assert grasps == 2


def test_find_keyframes_marks_divergence_of_failures(store: object) -> None:
    keyframes = kf.find_keyframes(store, TASK)
    infos = {i.episode_id: i for i in store.episodes(task=TASK)}  # type: ignore[attr-defined]
    kinds_by_outcome: dict[str, set[str]] = {"true": set(), "false": set()}
    for k in keyframes:
        kinds_by_outcome[infos[k.episode_id].success].add(k.kind)
        assert 0 <= k.step < infos[k.episode_id].length
    failed = [i for i in infos.values() if i.success == "false"]
    assert failed, "the noisy expert should fail in 60 steps"
    # only failures can part from a successful path
    assert kinds_by_outcome["false"] & {"divergence", "stall"}
    assert not kinds_by_outcome["true"] & {"divergence", "stall"}


def test_divergence_step_is_where_paths_part() -> None:
    cfg = kf.KeyframeConfig(divergence_dist=0.05, persist=3)
    t = np.linspace(0, 1, 40)[:, None]
    success = np.concatenate([t, np.zeros((40, 2))], axis=1)  # along x
    failed = success.copy()
    failed[20:, 1] = np.linspace(0, 0.5, 20)  # leaves the path sideways from step 20
    step, kind = kf.divergence_step(failed, success, cfg) or (-1, "")
    assert kind == "divergence" and 20 <= step <= 23
    stalled = success.copy()
    stalled[25:] = success[25]  # stops half way, on the path
    step, kind = kf.divergence_step(stalled, success, cfg) or (-1, "")
    assert kind == "stall" and step == 25
    assert kf.divergence_step(success, success, cfg) is None


def test_keyframe_start_context(store: object) -> None:
    info = store.episodes(task=TASK, success=True)[0]  # type: ignore[attr-defined]
    r = store.open(info.episode_id)  # type: ignore[attr-defined]
    cam = next(iter(r.spec.cameras))
    frames, states, actions = r.images(cam), r.states(), r.actions()
    cfg = kf.KeyframeConfig(memory=4, before=3)
    start = kf.keyframe_start(frames, states, actions, kf.Keyframe(info.episode_id, 20, "grasp"), "x", 60, cfg)
    assert start.start_step == 17 and start.steps_left == 43
    assert start.context_frames.shape == (5, *frames.shape[1:])
    assert np.array_equal(start.context_frames[0], frames[0])  # reference frame
    assert np.array_equal(start.context_frames[-1], frames[17])  # the frame the policy sees first
    assert np.array_equal(start.context_frames[1], frames[14])
    assert start.context_actions.shape == (4, actions.shape[1])
    assert np.array_equal(start.context_actions[-1], actions[16])  # the action that led into frame 17
    assert np.array_equal(start.state, states[17])
    # a keyframe near the start pads with the first frame and no-op actions
    early = kf.keyframe_start(frames, states, actions, kf.Keyframe(info.episode_id, 4, "contact"), "x", 60, cfg)
    assert early.start_step == 1
    assert np.array_equal(early.context_frames[1], frames[0]) and not early.context_actions[0].any()
