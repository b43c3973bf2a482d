"""``flywheel train cycle`` / ``status`` and ``flywheel worker``: user mistakes end in one red line."""

from __future__ import annotations

import json

from service_helpers import service_env
from typer.testing import CliRunner

from flywheel.cli import app


def invoke(settings, *args: str):
    env = {k: v for k, v in service_env(settings).items() if k.startswith("FLYWHEEL_")}
    return CliRunner().invoke(app, list(args), env=env)


def test_an_inline_cycle_prints_its_stages_and_candidate(embedded, episodes, policy_dir) -> None:
    out = invoke(embedded, "train", "cycle", "--inline", "--policy", str(policy_dir))
    assert out.exit_code == 0, out.output
    assert "succeeded" in out.output and "candidate vla-" in out.output and "promoted" in out.output
    run_id = out.output.split("run ")[1].split()[0]
    shown = invoke(embedded, "train", "status", run_id, "--json")
    record = json.loads(shown.output)
    assert record["state"] == "succeeded"
    assert [p["stage"] for p in record["progress"]] == [
        "snapshot", "world_model", "reward_model", "grpo", "evaluate", "register",
    ]  # fmt: skip
    listed = invoke(embedded, "train", "status")
    assert run_id in listed.output
    # the control plane on the same data dir lists it, with its outcome: every cycle shows in /runs and the dashboard
    import httpx

    from serving.embedded import EmbeddedServer
    from serving.settings import Settings

    with EmbeddedServer(Settings(data_dir=embedded.root, auth=False)) as server:
        runs = httpx.get(f"{server.url}/runs").json()
    mine = [r for r in runs if r["external_id"] == run_id]
    assert len(mine) == 1 and mine[0]["status"] == "succeeded" and mine[0]["progress"] == 1.0, runs
    assert mine[0]["result"]["outcome"] == "promoted" and mine[0]["requested_by"] == "trainer (inline)"


def test_an_empty_dataset_is_one_red_line_and_exit_1(embedded, policy_dir) -> None:
    out = invoke(embedded, "train", "cycle", "--inline", "--policy", str(policy_dir))
    assert out.exit_code == 1
    assert "empty dataset" in out.output and "Traceback" not in out.output


def test_a_cycle_without_a_policy_says_so(embedded, episodes) -> None:
    out = invoke(embedded, "train", "cycle", "--inline")
    assert out.exit_code == 1 and "--policy" in out.output


def test_a_bad_recipe_or_setting_is_one_line(embedded, episodes, policy_dir) -> None:
    for args, named in (
        (["--recipe", "fastest"], "fastest"),
        (["--set", "iteration=3"], "iteration"),
        (["--set", 'grpo={"learning_rate": 1}'], "learning_rate"),
        (["--set", "iterations"], "KEY=VALUE"),
    ):
        out = invoke(embedded, "train", "cycle", "--inline", "--policy", str(policy_dir), *args)
        assert out.exit_code == 2 and named in out.output and "Traceback" not in out.output, out.output
    old = embedded.root / "old.json"
    old.write_text(json.dumps({"policy": str(policy_dir), "preset": "tiny"}))
    out = invoke(embedded, "train", "cycle", "--inline", "--config", str(old))
    assert out.exit_code == 2 and "preset" in out.output and "recipe" in out.output


def test_an_unknown_run_is_one_line(embedded) -> None:
    out = invoke(embedded, "train", "status", "20260101-000000-abcdef")
    assert out.exit_code == 1 and "no run" in out.output and "Traceback" not in out.output


def test_a_gpu_worker_refuses_to_fork(embedded) -> None:
    out = invoke(embedded, "worker", "-Q", "gpu", "--pool", "prefork")
    assert out.exit_code == 2 and "solo" in out.output
    out = invoke(embedded, "worker", "-Q", "tpu")
    assert out.exit_code == 2 and "gpu" in out.output
