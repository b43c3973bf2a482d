"""`flywheel bench world-model --store ...`: action-replay agreement from saved models and a real store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from flywheel.cli import app


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Four scripted-expert drawer-close episodes (scene seeds in meta) and a tiny policy, world and reward model."""
    from data_store.episodes import EpisodeStore
    from trainer.reward_model import PRESETS as RM_PRESETS
    from trainer.reward_model import FrameRewardModel, SuccessClassifier
    from trainer.world_model import PRESETS as WM_PRESETS
    from trainer.world_model import PixelWorldModel
    from trainer.world_model.network import ChunkDenoiser
    from trainer.world_model.recording import NoisyExpertPlan, record_noisy_expert
    from vla.artifact import save_artifact
    from vla.model import VLAConfig, VLAPolicy
    from vla.norm_stats import NormStats

    root = tmp_path_factory.mktemp("agreement_bench")
    store = EpisodeStore(root / "episodes")
    record_noisy_expert(store, "drawer-close", 4, NoisyExpertPlan(noise_levels=(0.0, 1.0), min_steps=40, max_steps=60))
    r = store.open(store.episodes()[0].episode_id)
    torch.manual_seed(0)
    save_artifact(VLAPolicy(VLAConfig.preset("tiny"), NormStats.fit(r.states(), r.actions(), r.spec), r.spec),
                  root / "policy")  # fmt: skip
    PixelWorldModel(ChunkDenoiser(WM_PRESETS["tiny"])).save(root / "wm")
    FrameRewardModel(SuccessClassifier(RM_PRESETS["tiny"]), RM_PRESETS["tiny"], threshold=0.5).save(root / "rm")
    return {"store": root / "episodes", "policy": root / "policy", "wm": root / "wm", "rm": root / "rm"}


def test_agreement_is_json_lines_per_kind_of_start(saved: dict[str, Path]) -> None:
    args = ["bench", "world-model", "--store", str(saved["store"]), "--policy", str(saved["policy"]),
            "--model", str(saved["wm"]), "--reward-model", str(saved["rm"]), "--starts", "2", "--group", "2",
            "--threads", "1"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    first = {r["figure"]: r["value"] for r in rows if r["name"] == "agreement/drawer-close/first_frame"}
    assert first["trajectories"] == 2  # one held-out episode of four (judge_share 0.25) x group 2
    for figure in ("outcome_agreement", "advantage_sign_agreement", "reward_f1", "outcome_agreement_by_step_100"):
        assert 0.0 <= first[figure] <= 1.0, figure
    assert np.isclose(first["outcome_agreement"], 1 - first["false_success"] - first["missed_success"])
    assert all(r["config"]["group"] == 2 and r["machine"]["load_1min"] is not None for r in rows)


def test_agreement_without_its_models_is_one_line(saved: dict[str, Path]) -> None:
    result = CliRunner().invoke(app, ["bench", "world-model", "--store", str(saved["store"])])
    assert result.exit_code == 2 and "--policy" in result.output and "Traceback" not in result.output


def test_a_snapshot_limits_the_episodes_to_the_cycles(saved: dict[str, Path], tmp_path: Path) -> None:
    """--snapshot: the cycle's own episodes (its judge split), here two of the four; a file that is not one is a
    one-line error."""
    from data_store.episodes import EpisodeStore

    ids = sorted(i.episode_id for i in EpisodeStore(saved["store"]).episodes())[:2]
    snap = tmp_path / "snapshot.json"
    snap.write_text(json.dumps({"snapshot": {"episodes": [[e, 40] for e in ids]}}))
    args = ["bench", "world-model", "--store", str(saved["store"]), "--policy", str(saved["policy"]),
            "--model", str(saved["wm"]), "--reward-model", str(saved["rm"]), "--starts", "2", "--group", "2",
            "--threads", "1", "--snapshot", str(snap)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert rows and all(r["config"]["episodes"] == 2 for r in rows)
    snap.write_text("{}")
    bad = CliRunner().invoke(app, [*args[:-1], str(snap)])
    assert bad.exit_code == 2 and "snapshot.json" in bad.output and "Traceback" not in bad.output
