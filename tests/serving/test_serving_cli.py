"""``flywheel serve``: tokens straight into the registry, and rollout/rollback/register as thin clients
of a real server. Errors are one red line and exit code 1, never a traceback."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from data_store.registry import Registry, tokens
from flywheel.cli import app
from tests.serving.serving_helpers import SIM_SPEC, Server


def test_token_create_list_revoke(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'reg.db'}"
    runner = CliRunner()
    made = runner.invoke(app, ["serve", "token", "create", "--role", "operator", "--name", "arm-7", "--db", db])
    assert made.exit_code == 0, made.output
    token = made.stdout.strip().splitlines()[-1]
    assert token.startswith("fw_") and f"export FLYWHEEL_TOKEN={token}" in made.stderr
    registry = Registry(db, tmp_path / "artifacts")
    with registry.session() as s:
        row = tokens.authenticate(s, token)
        assert row is not None and (row.name, row.role) == ("arm-7", "operator")
        token_id = row.id
    listed = runner.invoke(app, ["serve", "token", "list", "--db", db])
    assert "arm-7" in listed.output and token not in listed.output
    assert runner.invoke(app, ["serve", "token", "revoke", str(token_id), "--db", db]).exit_code == 0
    with registry.session() as s:
        assert tokens.authenticate(s, token) is None
    registry.close()
    bad = runner.invoke(app, ["serve", "token", "create", "--role", "root", "--db", db])
    assert bad.exit_code != 0 and "role" in bad.output and "Traceback" not in bad.output


def test_register_rollout_rollback_through_the_cli(server: Server, artifacts: dict[str, Path]) -> None:
    runner = CliRunner()
    common = ["--server", server.url, "--token", server.admin]
    with server.client(server.operator) as op:
        op.post("/robots", json={"robot_id": "cli-arm", "spec": SIM_SPEC.to_json()})
    out = runner.invoke(app, ["serve", "register", str(artifacts["v3"]), *common])
    assert out.exit_code == 0, out.output
    v3 = out.output.split()[-1]
    out = runner.invoke(app, ["serve", "register", str(artifacts["v4"]), *common])
    v4 = out.output.split()[-1]
    assert runner.invoke(app, ["serve", "rollout", v3, "--robots", "cli-arm", *common]).exit_code == 0
    out = runner.invoke(app, ["serve", "rollout", v4, "--robots", "cli-arm", *common])
    assert out.exit_code == 0 and "cli-arm" in out.output
    out = runner.invoke(app, ["serve", "rollback", "--robots", "cli-arm", *common])
    assert out.exit_code == 0 and f"robot:cli-arm → {v3}" in out.output
    with server.client(server.viewer) as viewer:
        assert viewer.get("/robots/cli-arm/desired").json()["version"] == v3
    # an alias is a version everywhere a version is taken: rollout, alias targets and the download
    with server.client(server.admin) as admin:
        assert admin.put("/aliases/fleet/candidate", json={"version": v4}).status_code == 200
        assert admin.put("/aliases/fleet/staging", json={"version": "candidate"}).json()["version"] == v4
        got = admin.get("/policies/candidate/download")
        assert got.status_code == 200 and got.headers["X-Policy-Version"] == v4
    out = runner.invoke(app, ["serve", "rollout", "candidate", "--robots", "cli-arm", *common])
    assert out.exit_code == 0, out.output
    with server.client(server.viewer) as viewer:
        assert viewer.get("/robots/cli-arm/desired").json()["version"] == v4
    env = {"FLYWHEEL_SERVER": server.url, "FLYWHEEL_TOKEN": server.admin}
    out = runner.invoke(app, ["serve", "status"], env=env)  # a table a person reads; --json for scripts
    assert out.exit_code == 0 and "cli-arm" in out.output and v4 in out.output and "{" not in out.output
    listed = json.loads(runner.invoke(app, ["serve", "status", "--json", *common]).stdout)
    assert {r["robot_id"]: r["desired_version"] for r in listed}["cli-arm"] == v4
    out = runner.invoke(app, ["serve", "rollout", "vla-nope", "--robots", "cli-arm", *common])
    assert out.exit_code == 1 and "404" in out.output and "Traceback" not in out.output
    out = runner.invoke(app, ["serve", "rollback", "--server", server.url, "--token", server.viewer])
    assert out.exit_code == 1 and "admin" in out.output


def test_canary_rollout_through_the_cli(server: Server, artifacts: dict[str, Path]) -> None:
    runner = CliRunner()
    common = ["--server", server.url, "--token", server.admin]
    robots = ["cli-c1", "cli-c2"]
    with server.client(server.operator) as op:
        for robot in robots:
            op.post("/robots", json={"robot_id": robot, "spec": SIM_SPEC.to_json()})
    v3, v4 = (
        runner.invoke(app, ["serve", "register", str(artifacts[k]), *common]).output.split()[-1] for k in ("v3", "v4")
    )
    assert runner.invoke(app, ["serve", "rollout", v3, "--robots", ",".join(robots), *common]).exit_code == 0
    out = runner.invoke(app, ["serve", "rollout", v4, "--robots", "cli-c1,cli-c2", "--canary", "2", *common])
    assert out.exit_code == 1 and "422" in out.output and "leaves none on the current version" in out.output
    assert "Traceback" not in out.output
    out = runner.invoke(app, ["serve", "rollout", v4, "--robots", "cli-c1", "--canary", "1", "--min-episodes", "5"])
    assert out.exit_code == 2 and "--min-episodes" in out.output  # the old bar's option is gone
    canary = ["--canary", "1", "--max-episodes", "4", "--looks", "2", "--min-success-rate", "0.5"]
    out = runner.invoke(app, ["serve", "rollout", v4, "--robots", "cli-c1,cli-c2", *canary, *common])
    assert out.exit_code == 0, out.output
    assert "(canary)" in out.output and "judged against the other robots at 2, 4 canary episodes" in out.output
    with server.client(server.operator) as op:
        for robot, version, outcomes in (("cli-c2", v3, [False] * 4), ("cli-c1", v4, [True] * 4)):
            for i, ok in enumerate(outcomes):
                body = {"episode_id": f"{robot}-canary-{i}", "robot_id": robot, "policy_version": version,
                        "task": "drawer-close", "success": "true" if ok else "false", "length": 10,
                        "ended_at": datetime.now(UTC).isoformat()}  # fmt: skip
                assert op.post("/episodes", json=body).status_code == 201
    out = runner.invoke(app, ["serve", "rollouts", "--limit", "1", *common])
    assert out.exit_code == 0, out.output
    # 4/4 vs 0/4 at the last look: p = 1/70 <= 0.05 * (1 - 1/4), and 1.00 >= the floor; promoted, the robots are
    # still to say they run it (they are only in the registry here)
    assert f"{v4} rolling_out | running 0/2 | pending: cli-c1, cli-c2 | canary 4/4 vs fleet 0/4 | canary better at" in (
        out.output
    )
    with server.client(server.operator) as op:
        op.post("/robots/cli-c1/heartbeat", json={"running_version": v4})
    out = runner.invoke(app, ["serve", "status", *common])
    assert (
        out.exit_code == 0
        and "latest rollout" in out.output
        and "running 1/2 | running: cli-c1 | pending: cli-c2" in (out.output)
    ), out.output
    assert "gain p = 0.01429 <= 0.0375" in out.output and "promote only at a canary rate >= 0.50" in out.output
    with server.client(server.viewer) as viewer:
        assert {viewer.get(f"/robots/{r}/desired").json()["version"] for r in robots} == {v4}


def test_embedded_server_for_one_machine_use(tmp_path: Path) -> None:
    import httpx

    from serving.embedded import EmbeddedServer
    from serving.settings import Settings

    with EmbeddedServer(Settings(data_dir=tmp_path, auth=False)) as server:
        assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
        assert httpx.get(server.url + "/whoami").json() == {"name": "anonymous", "role": "admin"}
    assert (tmp_path / "registry" / "registry.db").is_file()


def test_the_server_url_comes_from_the_environment_and_the_help_says_so() -> None:
    shown = CliRunner().invoke(app, ["serve", "register", "--help"], terminal_width=200)
    assert "FLYWHEEL_SERVER" in shown.output and "FLYWHEEL_TOKEN" in shown.output


def test_token_names_too_long_or_with_control_characters_are_one_line(tmp_path: Path) -> None:
    """On PostgreSQL a 300-character name overflowed the column (a traceback). The name is checked before any
    database sees it, so SQLite shows the same refusal PostgreSQL now gives."""
    db = f"sqlite:///{tmp_path / 'reg.db'}"
    for name in ("n" * 300, "robot\x00one"):
        args = ["serve", "token", "create", "--role", "operator", "--name", name, "--db", db]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "--name" in result.output and "at most 128 characters" in " ".join(result.output.split())
        assert "Traceback" not in result.output


def test_token_create_for_a_robot_or_the_trainer(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'reg.db'}"
    runner = CliRunner()
    made = runner.invoke(app, ["serve", "token", "create", "--robot", "arm-7", "--db", db])
    assert made.exit_code == 0, made.output
    assert runner.invoke(app, ["serve", "token", "create", "--trainer", "--db", db]).exit_code == 0
    listed = " ".join(runner.invoke(app, ["serve", "token", "list", "--db", db]).output.split())
    assert "robot:arm-7" in listed and "trainer" in listed
    for bad in (["--robot", "arm 7"], ["--robot", "a", "--trainer"], ["--robot", "a", "--role", "admin"]):
        result = runner.invoke(app, ["serve", "token", "create", *bad, "--db", db])
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
