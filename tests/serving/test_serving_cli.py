"""``flywheel serve``: tokens straight into the registry, and rollout/rollback/register as thin clients
of a real server. Errors are one red line and exit code 1, never a traceback."""

from __future__ import annotations

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
    assert token.startswith("fw_")
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
    out = runner.invoke(app, ["serve", "rollout", "vla-nope", "--robots", "cli-arm", *common])
    assert out.exit_code == 1 and "404" in out.output and "Traceback" not in out.output
    out = runner.invoke(app, ["serve", "rollback", "--server", server.url, "--token", server.viewer])
    assert out.exit_code == 1 and "admin" in out.output


def test_embedded_server_for_one_machine_use(tmp_path: Path) -> None:
    import httpx

    from serving.embedded import EmbeddedServer
    from serving.settings import Settings

    with EmbeddedServer(Settings(data_dir=tmp_path, auth=False)) as server:
        assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
        assert httpx.get(server.url + "/whoami").json() == {"name": "anonymous", "role": "admin"}
    assert (tmp_path / "registry" / "registry.db").is_file()
