"""lerobot's own SO-101 follower class behind our ``--robot lerobot`` backend (its Feetech bus faked as
lerobot's tests fake it), and a lerobot policy (ACT, built from its config, no pretrained weights) saved
with ``save_pretrained`` and run by ``flywheel robot run --policy``."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import patch

import numpy as np
import pytest
import torch

from data_store.episodes import EpisodeStore
from data_store.schema import RobotSpec
from robot_agent.robots.base import make_robot

ROOT = Path(__file__).resolve().parents[2]
MOTORS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
LIMITS = (
    f"joint_names: [{', '.join(MOTORS)}]\n"
    "position_min: [-90, -90, -90, -90, -90, 0]\nposition_max: [90, 90, 90, 90, 90, 100]\n"
    "max_velocity: [100, 100, 100, 100, 100, 200]\nhome: [0, -40, 40, 0, 0, 10]\n"
)


class FakeFeetechBus:
    """The attributes of ``FeetechMotorsBus`` that ``SOFollower`` uses, with motors that reach each goal at
    once (as lerobot's ``tests/robots/test_so100_follower.py`` fakes the bus). Keeps every goal written."""

    def __init__(self, *_: Any, motors: dict[str, Any], **__: Any) -> None:
        self.motors = motors
        self.is_connected = False
        self.is_calibrated = True
        self.present = dict.fromkeys(motors, 5.0)
        self.goals: list[dict[str, float]] = []
        self.torque_off_on_disconnect: bool | None = None

    def connect(self) -> None:
        self.is_connected = True

    def disconnect(self, disable_torque: bool = True) -> None:
        self.is_connected = False
        self.torque_off_on_disconnect = disable_torque

    def sync_read(self, register: str) -> dict[str, float]:
        assert register == "Present_Position" and self.is_connected
        return dict(self.present)

    def sync_write(self, register: str, values: dict[str, float]) -> None:
        assert register == "Goal_Position" and self.is_connected
        self.goals.append({k: float(v) for k, v in values.items()})
        self.present.update(values)

    @contextlib.contextmanager
    def torque_disabled(self) -> Iterator[None]:
        yield


@pytest.fixture
def so101(tmp_path: Path) -> Iterator[Any]:
    from lerobot.robots.so_follower import so_follower

    (tmp_path / "limits.yaml").write_text(LIMITS)
    with (
        patch.object(so_follower, "FeetechMotorsBus", FakeFeetechBus),
        patch.object(so_follower.SOFollower, "configure", lambda self: None),
    ):
        robot = make_robot(
            "lerobot",
            robot_type="so101_follower",
            port="/dev/null",
            id="t",
            fps=200.0,
            limits=str(tmp_path / "limits.yaml"),
        )
        yield robot


def test_so101_follower_through_our_backend(so101: Any) -> None:
    from lerobot.robots.so_follower.so_follower import SOFollower

    assert isinstance(so101._robot, SOFollower)  # lerobot's own class, built from its registered config
    bus: FakeFeetechBus = so101._robot.bus
    assert so101.spec.action_names == tuple(f"{m}.pos" for m in MOTORS)
    assert so101.spec.state_dim == so101.spec.action_dim == 6
    with so101:
        assert bus.is_connected
        obs = so101.observe()
        assert obs.state.tolist() == [5.0] * 6
        action = np.float32([500, 5, 5, 5, 5, 5])  # past the joint limit and the velocity cap
        so101.send_action(action)
        goal = bus.goals[-1]
        assert goal["shoulder_pan"] == pytest.approx(5.5)  # 100 units/s at 200 fps from 5
        assert action[0] == pytest.approx(5.5)  # what the motors were told is what gets recorded
        for _ in range(400):
            so101.send_action(np.float32([500, 5, 5, 5, 5, 5]))
        assert bus.present["shoulder_pan"] == pytest.approx(90.0)  # stopped at the limit
    assert not bus.is_connected and bus.torque_off_on_disconnect is True
    assert [bus.present[m] for m in MOTORS] == pytest.approx([0, -40, 40, 0, 0, 10])  # went home first


def test_an_episode_on_so101_is_recorded(so101: Any, tmp_path: Path) -> None:
    from robot_agent.loop import run_episode
    from robot_agent.policies import RandomPolicy
    from robot_agent.slot import PolicySlot

    store = EpisodeStore(tmp_path / "store")
    with so101:
        writer = store.create(so101.spec, task="so101-test", instruction="wave", robot_id="so101-0")
        result = run_episode(
            so101, PolicySlot(RandomPolicy(so101.spec, seed=0), version="random"), max_steps=20, writer=writer
        )
    info = store.info(result.episode_id or writer.episode_id)
    assert info.length == 20 and info.spec.action_names == so101.spec.action_names
    actions = store.open(info.episode_id).actions()
    low, high = np.array(so101.spec.action_low), np.array(so101.spec.action_high)
    assert ((actions >= low - 1e-4) & (actions <= high + 1e-4)).all()


def _save_act(robot_spec: Any, out: Path) -> None:
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors

    state_dim, action_dim = robot_spec.state_dim, robot_spec.action_dim
    inputs = {"observation.state": PolicyFeature(type=FeatureType.STATE, shape=(state_dim,))}
    for camera, (h, w) in robot_spec.cameras.items():
        inputs[f"observation.images.{camera}"] = PolicyFeature(type=FeatureType.VISUAL, shape=(3, h, w))
    config = ACTConfig(
        input_features=inputs,
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(action_dim,))},
        chunk_size=8,
        n_action_steps=8,
        dim_model=32,
        n_heads=2,
        dim_feedforward=64,
        n_encoder_layers=1,
        n_decoder_layers=1,
        use_vae=False,
        pretrained_backbone_weights=None,  # no hub here: a ResNet-18 from its config
        device="cpu",
    )
    torch.manual_seed(0)
    policy = ACTPolicy(config)
    stats: dict[str, dict[str, torch.Tensor]] = {
        "observation.state": {"mean": torch.zeros(state_dim), "std": torch.ones(state_dim)},
        "action": {"mean": torch.zeros(action_dim), "std": torch.full((action_dim,), 0.3)},
    }
    for camera in robot_spec.cameras:
        stats[f"observation.images.{camera}"] = {"mean": torch.full((3, 1, 1), 0.5), "std": torch.full((3, 1, 1), 0.25)}
    pre, post = make_pre_post_processors(config, dataset_stats=stats)
    policy.save_pretrained(out)
    pre.save_pretrained(out)
    post.save_pretrained(out)


def test_a_lerobot_policy_through_the_protocol(tmp_path: Path) -> None:
    from data_store.schema import Observation
    from vla.adapters.lerobot import LeRobotPolicy
    from vla.protocol import Policy

    spec = RobotSpec(
        action_dim=4, state_dim=4, action_low=(-1.0,) * 4, action_high=(1.0,) * 4, cameras={"corner": (64, 64)}
    )
    _save_act(spec, tmp_path / "act")
    policy = LeRobotPolicy.from_pretrained(tmp_path / "act")
    assert isinstance(policy, Policy)
    chunk = policy.act(Observation.fake(spec, seed=1))
    assert chunk.actions.shape == (8, 4) and np.isfinite(chunk.actions).all()
    policy.reset()


def test_a_lerobot_policy_runs_on_our_robot_and_its_episodes_are_recorded(tmp_path: Path) -> None:
    from sim.tasks import resolve_task

    robot = make_robot("sim", task=resolve_task("drawer-close"), image_size=(64, 64))
    checkpoint = tmp_path / "act"
    _save_act(robot.spec, checkpoint)
    assert json.loads((checkpoint / "config.json").read_text())["type"] == "act"
    store = tmp_path / "store"
    argv = [sys.executable, "-m", "flywheel.cli", "robot", "run", "--robot", "sim", "--task", "drawer-close"]
    argv += ["--policy", str(checkpoint), "--episodes", "2", "--max-steps", "12", "--store", str(store)]
    result = subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "MUJOCO_GL": "egl"}
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    infos = EpisodeStore(store, create=False).episodes()
    assert len(infos) == 2 and all(i.length == 12 and i.status == "complete" for i in infos)
    assert {i.policy_version for i in infos} == {"lerobot:act:act"}
    actions = EpisodeStore(store, create=False).open(infos[0].episode_id).actions()
    assert np.isfinite(actions).all() and actions.std() > 0  # the network's outputs, not a constant
