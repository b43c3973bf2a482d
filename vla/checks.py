"""Checks a policy artifact must pass before anything runs it: the robot's hot swap (``robot_agent.sync``) and
the server's remote inference (``serving/routers/inference.py``) both call ``prepare_policy``.

``prepare_policy`` verifies the artifact (``vla.manifest.verify_artifact``: every file's sha256), refuses an action
space that is not the robot's, loads the weights, and runs a health probe: ``Observation.fake(spec)`` must give a
chunk ``[K, A]`` of finite actions inside the robot's bounds (this also warms the model up). Any failure is
``Refused`` with the reason a person reads.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from data_store.schema import Observation, RobotSpec
from vla.protocol import Policy


class Refused(Exception):
    """A version the robot will not run; the message is the reason reported to the server."""


Loader = Callable[[Path], Policy]


def load_vla_artifact(folder: Path) -> Policy:
    from vla.artifact import load_artifact

    return load_artifact(folder)


def health_probe(policy: Policy, spec: RobotSpec, *, probes: int = 2) -> None:
    """Fake observations must give float chunks ``[K, A]``: finite, inside the robot's action bounds.
    Raises ``Refused`` naming what is wrong. The first calls also warm the model up."""
    low = np.asarray(spec.action_low, dtype=np.float32)
    high = np.asarray(spec.action_high, dtype=np.float32)
    for seed in range(probes):
        try:
            chunk = policy.act(Observation.fake(spec, seed=seed))
        except Exception as e:
            raise Refused(f"health probe: act() raised {type(e).__name__}: {e}") from e
        actions = np.asarray(chunk.actions)
        if actions.ndim != 2 or actions.shape[1] != spec.action_dim or actions.shape[0] < 1:
            raise Refused(f"health probe: chunk shape {list(actions.shape)}, expected [K, {spec.action_dim}]")
        if not np.all(np.isfinite(actions)):
            bad = int(np.sum(~np.isfinite(actions)))
            raise Refused(f"health probe: {bad} of {actions.size} actions are not finite (NaN/inf)")
        tol = 1e-5 * np.maximum(1.0, np.abs(high - low))
        if np.any(actions < low - tol) or np.any(actions > high + tol):
            raise Refused(
                f"health probe: actions in [{actions.min():.3g}, {actions.max():.3g}] leave the robot's "
                f"bounds [{low.min():.3g}, {high.max():.3g}]"
            )
    policy.reset()


def prepare_policy(folder: Path, spec: RobotSpec, *, loader: Loader = load_vla_artifact) -> Policy:
    """Check, load and probe an unpacked artifact for a robot with ``spec``; raises ``Refused``."""
    from vla.manifest import ArtifactError, verify_artifact

    try:
        manifest = verify_artifact(folder)
    except ArtifactError as e:
        raise Refused(f"artifact check failed: {e}") from e
    policy_spec = manifest.get("robot_spec") or {}
    if isinstance(policy_spec, dict) and "action_dim" in policy_spec and policy_spec["action_dim"] != spec.action_dim:
        raise Refused(
            f"action space mismatch: the policy acts in {policy_spec['action_dim']} dimensions, "
            f"this robot in {spec.action_dim}"
        )
    try:
        policy = loader(folder)
    except Exception as e:
        raise Refused(f"loading failed: {type(e).__name__}: {e}") from e
    if policy.action_dim != spec.action_dim:
        raise Refused(
            f"action space mismatch: the policy acts in {policy.action_dim} dimensions, this robot in {spec.action_dim}"
        )
    health_probe(policy, spec)
    return policy
