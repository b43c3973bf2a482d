"""The safety filter: each behaviour on its own (robot_agent/safety.py)."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest

from data_store.schema import RobotSpec
from robot_agent.safety import PRESETS, SafetyConfig, SafetyFilter

SPEC = RobotSpec(action_dim=4, state_dim=4, action_low=(-1.0,) * 4, action_high=(1.0,) * 4)
HOME = np.array([0.0, 0.6, 0.2, 1.0], np.float32)  # hand xyz, gripper


def _filter(**changes: object) -> SafetyFilter:
    return SafetyFilter(replace(PRESETS["sim"], **changes), SPEC)  # type: ignore[arg-type]


def a(*xs: float) -> np.ndarray:
    return np.array(xs, np.float32)


def test_safety_is_on_by_default() -> None:
    assert SafetyConfig().enabled and SafetyConfig().max_delta is not None
    v = SafetyFilter(SafetyConfig(), SPEC).filter(a(5, 0, 0, 0), state=HOME)
    assert v.action[0] == 1.0


def test_clamps_to_the_action_limits() -> None:
    v = _filter(max_delta=None).filter(a(2, -3, 0.5, 0), state=HOME)
    np.testing.assert_array_equal(v.action, a(1, -1, 0.5, 0))
    assert v.events == ("clamped",) and v.stop is None
    tight = _filter(max_delta=None, action_low=(-0.5,) * 4, action_high=(0.5,) * 4)
    np.testing.assert_array_equal(tight.filter(a(1, -1, 0.2, 0), state=HOME).action, a(0.5, -0.5, 0.2, 0))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_refuses_non_finite_actions_and_stops(bad: float) -> None:
    f = _filter()
    f.filter(a(0, 0, 0, 0.7), state=HOME)
    v = f.filter(a(0, bad, 0, 0), state=HOME)
    assert v.stop is not None and "non-finite" in v.stop and "[1]" in v.stop
    np.testing.assert_array_equal(v.action, a(0, 0, 0, 0.7))  # hold: no motion, gripper kept
    off = SafetyFilter(PRESETS["off"], SPEC)
    assert off.filter(a(0, bad, 0, 0), state=HOME).stop is not None


def test_limits_the_change_per_step() -> None:
    f = _filter(max_delta=0.25)
    f.filter(a(0, 0, 0, 0), state=HOME)
    v = f.filter(a(1, -1, 0.1, 1), state=HOME)
    np.testing.assert_allclose(v.action, a(0.25, -0.25, 0.1, 0.25))
    assert "max_delta" in v.events
    np.testing.assert_allclose(f.filter(a(1, -1, 0.1, 1), state=HOME).action, a(0.5, -0.5, 0.1, 0.5))
    f.begin_episode()  # the arm was homed: no memory of the last episode's actions
    np.testing.assert_allclose(f.filter(a(1, -1, 0.1, 1), state=HOME).action, a(1, -1, 0.1, 1))


def test_watchdog_holds_when_the_action_is_stale() -> None:
    f = _filter(watchdog_s=0.5)
    f.filter(a(0.3, 0, 0, -1), state=HOME, now=1.0, issued_at=1.0)
    fresh = f.filter(a(0.3, 0, 0, -1), state=HOME, now=1.4, issued_at=1.0)
    assert fresh.events == () and fresh.action[0] == pytest.approx(0.3)
    stale = f.filter(a(0.3, 0, 0, -1), state=HOME, now=1.6, issued_at=1.0)
    assert stale.events == ("watchdog",) and stale.stop is None
    np.testing.assert_array_equal(stale.action, a(0, 0, 0, -1))  # no motion; the grasp is kept


def test_workspace_box_cuts_motion_that_would_leave_it() -> None:
    f = _filter(max_delta=None)  # box x in [-0.5, 0.5]; 1 cm per action unit
    at_edge = np.array([0.495, 0.6, 0.2, 1.0], np.float32)
    v = f.filter(a(1, 0, 0, 0), state=at_edge)
    assert v.action[0] == pytest.approx(0.5, abs=1e-3) and "workspace" in v.events
    inward = f.filter(a(-1, 0, 0, 0), state=at_edge)
    assert inward.action[0] == -1 and "workspace" not in inward.events
    outside = np.array([0.6, 0.6, 0.2, 1.0], np.float32)
    assert f.filter(a(1, 0.5, 0, 0), state=outside).action[0] == 0  # further out: cut to zero
    assert f.filter(a(-1, 0.5, 0, 0), state=outside).action[0] == -1  # back in: allowed
    on_floor = np.array([0.0, 0.6, 0.0, 1.0], np.float32)
    assert f.filter(a(0, 0, -1, 0), state=on_floor).action[2] == 0


def test_estop_latches_across_episodes_until_reset() -> None:
    f = _filter()
    thread = threading.Thread(target=f.estop, args=("big red button",))
    thread.start()
    thread.join()
    assert f.estopped
    v = f.filter(a(0.1, 0, 0, 0), state=HOME)
    assert v.stop == "e-stop: big red button"
    f.begin_episode()
    assert f.filter(a(0.1, 0, 0, 0), state=HOME).stop is not None
    f.reset()
    assert not f.estopped and f.filter(a(0.1, 0, 0, 0), state=HOME).stop is None


def test_absolute_arms_hold_their_last_target() -> None:
    f = SafetyFilter(SafetyConfig(action_kind="absolute", max_delta=None), SPEC)
    f.filter(a(0.2, 0.3, 0.4, 0.5), state=HOME, now=0.0, issued_at=0.0)
    v = f.filter(a(0.9, 0.9, 0.9, 0.9), state=HOME, now=2.0, issued_at=0.0)
    np.testing.assert_allclose(v.action, a(0.2, 0.3, 0.4, 0.5))


def test_bad_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="workspace_low"):
        SafetyConfig(workspace_low=(0, 0, 0), workspace_high=(1, -1, 1))
    with pytest.raises(ValueError, match="together"):
        SafetyConfig(workspace_low=(0, 0, 0))
    with pytest.raises(ValueError, match="max_delta"):
        SafetyConfig(max_delta=0)
    with pytest.raises(ValueError, match="unknown safety preset"):
        SafetyConfig.preset("yolo")
