"""`flywheel robot run --server`: the operator's robot follows the control plane's rollouts.

A real server (uvicorn on a thread, SQLite registry), a real tiny VLA artifact registered and rolled out
over REST, and the CLI on the simulated arm: it bootstraps the rolled-out version, records its episodes
under that version, and indexes them on the server.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from typer.testing import CliRunner

from data_store.episodes import EpisodeStore
from flywheel.cli import app
from tests.serving.serving_helpers import make_artifact


def test_run_follows_the_server(tmp_path: Path) -> None:
    from serving.embedded import EmbeddedServer
    from serving.settings import Settings

    version = make_artifact(tmp_path / "policy", seed=3)
    server = EmbeddedServer(Settings(data_dir=tmp_path / "server", auth=False))
    with server, httpx.Client(base_url=server.url, timeout=60) as http:
        r = http.post("/policies/from-path", json={"path": str(tmp_path / "policy")})
        assert r.status_code == 201, r.text
        assert r.json()["policy"]["version"] == version
        r = http.post("/rollouts", json={"version": version})  # the fleet: robots that join later follow it
        assert r.status_code in (200, 201), r.text

        store_dir = tmp_path / "episodes"
        args = ["robot", "run", "--server", server.url, "--robot-id", "arm-7", "--episodes", "2",
                "--max-steps", "12", "--store", str(store_dir), "--cache", str(tmp_path / "cache")]  # fmt: skip
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output

        episodes = EpisodeStore(store_dir).episodes()
        assert len(episodes) == 2
        assert {e.policy_version for e in episodes} == {version}
        assert all(e.robot_id == "arm-7" and e.length == 12 for e in episodes)

        indexed = http.get("/episodes", params={"robot_id": "arm-7"}).json()
        rows = indexed["episodes"] if isinstance(indexed, dict) else indexed
        assert {row["episode_id"] for row in rows} == {e.episode_id for e in episodes}
        assert {row["policy_version"] for row in rows} == {version}


def test_policy_server_needs_a_server(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["robot", "run", "--policy", "server", "--store", str(tmp_path / "s")])
    assert result.exit_code == 2
    assert "--server" in result.output


def test_a_robot_without_a_valid_token_says_so_at_once(tmp_path: Path) -> None:
    """A server with auth on and a robot with no token (or a wrong one): one line naming the token, not five
    minutes of silent retries before a timeout."""
    from serving.embedded import EmbeddedServer
    from serving.settings import Settings

    server = EmbeddedServer(Settings(data_dir=tmp_path / "server", auth=True))
    with server:
        for token in ([], ["--token", "not-a-token"]):
            args = ["robot", "run", "--server", server.url, "--episodes", "1", "--store", str(tmp_path / "s"),
                    "--cache", str(tmp_path / "cache"), *token]  # fmt: skip
            result = CliRunner(env={"FLYWHEEL_TOKEN": None}).invoke(app, args)
            assert result.exit_code == 2, result.output
            assert "refused this robot" in result.output and "FLYWHEEL_TOKEN" in result.output
            assert "Traceback" not in result.output
