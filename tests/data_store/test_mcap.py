"""Episodes exported to rosbag2/MCAP read back with rosbags' ROS 2 Jazzy typestore, field by field."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from data_store.episodes import EpisodeStore
from data_store.schema import Observation, RobotSpec
from tests.conftest import need

try:
    import rosbags  # noqa: F401

    HAVE_ROSBAGS = True
except ImportError:
    HAVE_ROSBAGS = False

SIM_SPEC = RobotSpec(
    action_dim=4,
    state_dim=4,
    action_low=(-1.0,) * 4,
    action_high=(1.0,) * 4,
    cameras={"corner": (12, 16)},
    depth_cameras={"corner": (12, 16)},
    fps=10.0,
    action_names=("dx", "dy", "dz", "grip"),
    state_names=("x", "y", "z", "grip"),
)
ARM_SPEC = RobotSpec(
    action_dim=2,
    state_dim=2,
    action_low=(-1.0, -1.0),
    action_high=(1.0, 1.0),
    cameras={"side": (8, 8)},
    fps=10.0,
    action_names=("shoulder.target", "elbow.target"),
    state_names=("shoulder.position", "elbow.position"),
)


def _record(store: EpisodeStore, spec: RobotSpec, steps: int, seed: int) -> tuple[str, list[Observation], np.ndarray]:
    rng = np.random.default_rng(seed)
    obs_list, actions = [], []
    with store.create(spec, task="drawer-close", instruction="close the drawer", robot_id="arm-1") as w:
        for t in range(steps):
            obs = Observation.fake(spec, instruction="close the drawer", seed=seed * 100 + t)
            obs.timestamp = 1_700_000_000.0 + 0.1 * t + 0.0123  # fractional seconds survive the export
            action = rng.uniform(-1, 1, spec.action_dim).astype(np.float32)
            w.append(obs, action)
            obs_list.append(obs)
            actions.append(action)
        w.finish(success=True)
    return w.episode_id, obs_list, np.stack(actions)


def test_export_reads_back_with_ros2_types(tmp_path: Path) -> None:
    need(HAVE_ROSBAGS, "rosbags (pip install 'vla-flywheel[ros]')")
    from data_store.mcap import export_mcap, read_bag

    store = EpisodeStore(tmp_path / "store")
    ep_a, obs_a, act_a = _record(store, SIM_SPEC, steps=5, seed=1)
    ep_b, _, _ = _record(store, SIM_SPEC, steps=3, seed=2)
    bags = export_mcap(store, [ep_a, store.info(ep_b)], tmp_path / "bags")
    assert [b.name for b in bags] == [ep_a, ep_b]
    assert list(bags[0].glob("*.mcap")), "the bag's storage is MCAP"

    msgs = read_bag(bags[0])
    assert set(msgs) == {
        "/episode/info",
        "/robot/state",
        "/robot/action",
        "/camera/corner/image_raw",
        "/camera/corner/depth/image_raw",
    }
    info = json.loads(msgs["/episode/info"][0][1].data)
    assert (info["episode_id"], info["success"], info["instruction"]) == (ep_a, "true", "close the drawer")

    for t, obs in enumerate(obs_a):
        t_ns, img = msgs["/camera/corner/image_raw"][t]
        assert img.encoding == "rgb8" and (img.height, img.width, img.step) == (12, 16, 48)
        np.testing.assert_array_equal(np.asarray(img.data).reshape(12, 16, 3), obs.images["corner"])
        assert t_ns == round(obs.timestamp * 1e9)
        assert img.header.stamp.sec + img.header.stamp.nanosec * 1e-9 == pytest.approx(obs.timestamp, abs=1e-6)

        _, dep = msgs["/camera/corner/depth/image_raw"][t]
        assert dep.encoding == "16UC1"
        assert obs.depth is not None
        np.testing.assert_array_equal(np.asarray(dep.data).view("<u2").reshape(12, 16), obs.depth["corner"])

        _, state = msgs["/robot/state"][t]
        np.testing.assert_array_equal(np.asarray(state.data), obs.state)
        assert state.layout.dim[0].label == "x,y,z,grip"
        _, action = msgs["/robot/action"][t]
        np.testing.assert_array_equal(np.asarray(action.data), act_a[t])

    assert len(read_bag(bags[1])["/robot/state"]) == 3


def test_joint_state_robots_also_get_joint_states(tmp_path: Path) -> None:
    need(HAVE_ROSBAGS, "rosbags (pip install 'vla-flywheel[ros]')")
    from data_store.mcap import export_mcap, read_bag

    store = EpisodeStore(tmp_path / "store")
    ep, obs_list, _ = _record(store, ARM_SPEC, steps=4, seed=3)
    msgs = read_bag(export_mcap(store, [ep], tmp_path / "bags")[0])
    joint_states = msgs["/joint_states"]
    assert len(joint_states) == 4
    for (_, js), obs in zip(joint_states, obs_list, strict=True):
        assert list(js.name) == ["shoulder", "elbow"]
        np.testing.assert_allclose(js.position, obs.state, rtol=0, atol=1e-7)


def test_existing_bag_is_not_overwritten(tmp_path: Path) -> None:
    need(HAVE_ROSBAGS, "rosbags (pip install 'vla-flywheel[ros]')")
    from data_store.mcap import export_mcap

    store = EpisodeStore(tmp_path / "store")
    ep, _, _ = _record(store, ARM_SPEC, steps=2, seed=4)
    export_mcap(store, [ep], tmp_path / "bags")
    with pytest.raises(Exception, match="exists"):
        export_mcap(store, [ep], tmp_path / "bags")
