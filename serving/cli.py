"""`flywheel serve` commands: run the server, manage tokens, roll out and roll back.

Only typer/rich at module level (``flywheel --help`` stays instant); uvicorn, sqlalchemy and httpx are
imported inside the commands. ``rollout``/``rollback``/``register`` are thin httpx clients of the
REST API (``--server``, ``--token`` or ``FLYWHEEL_SERVER``/``FLYWHEEL_TOKEN``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

app = typer.Typer(no_args_is_help=True)
token_app = typer.Typer(no_args_is_help=True, help="API tokens: create (shown once), list, revoke.")
app.add_typer(token_app, name="token")
console = Console()
err = Console(stderr=True)

ServerOpt = typer.Option("http://127.0.0.1:8000", "--server", envvar="FLYWHEEL_SERVER", help="Server URL.")
TokenOpt = typer.Option(None, "--token", envvar="FLYWHEEL_TOKEN", help="API token (admin for changes).")
DbOpt = typer.Option(None, "--db", help="Registry database URL (default: SQLite under FLYWHEEL_DATA_DIR).")
ArtifactsOpt = typer.Option(None, "--artifacts", help="Artifact folder (default: under FLYWHEEL_DATA_DIR).")


def _settings(db: str | None, artifacts: Path | None, **more: Any) -> Any:
    from serving.settings import Settings

    overrides: dict[str, Any] = dict(more)
    if db:
        overrides["registry_url"] = db
    if artifacts:
        overrides["registry_artifacts"] = str(artifacts)
    return Settings(**overrides)


@app.command()
def run(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 for every interface)."),
    port: int = typer.Option(8000, min=1, max=65535),
    db: str | None = DbOpt,
    artifacts: Path | None = ArtifactsOpt,
    no_auth: bool = typer.Option(False, "--no-auth", help="Every caller is an admin (one machine, demos only)."),
    log_level: str = typer.Option("info"),
) -> None:
    """Run the control-plane server (REST, remote inference, dashboard at /dashboard)."""
    import uvicorn

    from serving.app import create_app

    try:
        application = create_app(_settings(db, artifacts, auth=not no_auth))
    except Exception as e:  # a bad database URL, an unreachable PostgreSQL
        err.print(f"[red]cannot open the registry: {type(e).__name__}: {e}[/red]")
        raise typer.Exit(1) from None
    console.print(f"dashboard: http://{host}:{port}/dashboard   API docs: http://{host}:{port}/docs")
    uvicorn.run(application, host=host, port=port, log_level=log_level)


def _registry(db: str | None, artifacts: Path | None) -> Any:
    return _settings(db, artifacts).open_registry()


@token_app.command("create")
def token_create(
    role: str = typer.Option("operator", help="viewer | operator | admin"),
    name: str = typer.Option("", help="Who or what holds it (shown in the audit log)."),
    robot: str | None = typer.Option(
        None, "--robot", help="A robot's token: it acts only as this robot (reports, heartbeats, episodes; reads)."
    ),
    trainer: bool = typer.Option(False, "--trainer", help="The trainer's token: writes training runs' progress."),
    db: str | None = DbOpt,
    artifacts: Path | None = ArtifactsOpt,
) -> None:
    """Create a token; it is printed once (only its sha256 is stored)."""
    from data_store.registry import Invalid, tokens

    if robot is not None and trainer:
        raise typer.BadParameter("a token is a robot's (--robot) or the trainer's (--trainer), not both")
    bound_to = tokens.robot_binding(robot) if robot is not None else (tokens.TRAINER if trainer else None)
    registry = _registry(db, artifacts)
    try:
        with registry.session() as s:
            token, row = tokens.create_token(s, role, name=name, bound_to=bound_to)
            err.print(f"token {row.id} ({row.name}, {row.role}); keep it, it is not shown again:")
    except Invalid as e:
        hint = {"name": "--name", "bound_to": "--robot"}.get(str(e).split(":", 1)[0], "--role")
        raise typer.BadParameter(str(e), param_hint=hint) from None
    finally:
        registry.close()
    print(token)
    err.print(f"to use it here: export FLYWHEEL_TOKEN={token}", highlight=False, soft_wrap=True)


@token_app.command("list")
def token_list(db: str | None = DbOpt, artifacts: Path | None = ArtifactsOpt) -> None:
    """The tokens (never their values)."""
    from rich.table import Table

    from data_store.registry import tokens

    registry = _registry(db, artifacts)
    table = Table("id", "name", "role", "bound to", "created", "revoked")
    with registry.session() as s:
        for t in tokens.list_tokens(s):
            created, revoked = f"{t.created_at:%Y-%m-%d %H:%M}", str(t.revoked_at or "")
            table.add_row(str(t.id), t.name, t.role, t.bound_to or "-", created, revoked)
    registry.close()
    console.print(table)


@token_app.command("revoke")
def token_revoke(token_id: int, db: str | None = DbOpt, artifacts: Path | None = ArtifactsOpt) -> None:
    """Revoke a token by id (``token list``)."""
    from data_store.registry import NotFound, tokens

    registry = _registry(db, artifacts)
    try:
        with registry.session() as s:
            tokens.revoke_token(s, token_id)
    except NotFound as e:
        raise typer.BadParameter(str(e)) from None
    finally:
        registry.close()
    console.print(f"token {token_id} revoked")


def _call(server: str, token: str | None, method: str, path: str, **kwargs: Any) -> Any:
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        resp = httpx.request(method, server.rstrip("/") + path, headers=headers, timeout=60, **kwargs)
    except httpx.HTTPError as e:
        err.print(f"[red]cannot reach the server at {server}: {e}[/red]")
        raise typer.Exit(1) from None
    try:
        body = resp.json()
    except ValueError:
        body = {"reason": resp.text}
    if resp.status_code >= 400:
        err.print(f"[red]{resp.status_code}: {body.get('reason', body)}[/red]")
        raise typer.Exit(1)
    return body


@app.command()
def register(
    artifact: Path = typer.Argument(..., help="A policy artifact folder or .tar.gz."),
    server: str = ServerOpt,
    token: str | None = TokenOpt,
) -> None:
    """Upload a policy artifact to the registry (idempotent: the same artifact gives the same version)."""
    import io
    import tarfile

    if not artifact.exists():
        raise typer.BadParameter(f"{artifact}: no such file or folder", param_hint="ARTIFACT")
    if artifact.is_dir():
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for f in sorted(artifact.iterdir()):
                if f.is_file():
                    tar.add(f, arcname=f.name)
        data = buf.getvalue()
    else:
        data = artifact.read_bytes()
    body = _call(server, token, "POST", "/policies", files={"file": ("artifact.tar.gz", data, "application/gzip")})
    what = "registered" if body["created"] else "already registered as"
    console.print(f"{what} [bold]{body['policy']['version']}[/bold]")


@app.command()
def rollout(
    version: str = typer.Argument(..., help="Policy version to roll out."),
    robots: str | None = typer.Option(None, help="Comma-separated robot ids (default: every robot and the fleet)."),
    canary: int = typer.Option(
        0, min=0, help="Move this many robots first; the rest follow if the canary does significantly better."
    ),
    max_episodes: int | None = typer.Option(
        None, min=1, help="Canary episodes by the last look; no gain by then halts it (server default 200)."
    ),
    looks: int | None = typer.Option(None, min=1, help="Equally spaced looks up to --max-episodes (default 5)."),
    min_success_rate: float | None = typer.Option(
        None, min=0.0, max=1.0, help="Also needed to promote: the canary's own success rate at least this."
    ),
    server: str = ServerOpt,
    token: str | None = TokenOpt,
) -> None:
    """Roll a version out to robots, all at once or as a canary judged against the other robots."""
    body: dict[str, Any] = {
        "version": version,
        "robots": [r.strip() for r in robots.split(",") if r.strip()] if robots else None,
        "canary": canary,
        "min_success_rate": min_success_rate,
    }
    for key, value in (("max_episodes", max_episodes), ("looks", looks)):
        if value is not None:
            body[key] = value
    out = _call(server, token, "POST", "/rollouts", json=body)
    console.print(f"rollout {out['id']}: {version} → {', '.join(out['robots']) or 'fleet'} ({out['status']})")
    if out["canary"]:
        at = ", ".join(str(n) for n in out["look_sizes"])
        console.print(
            f"canary on {', '.join(out['canary'])}: judged against the other robots at {at} canary episodes; "
            f"`flywheel serve rollouts` shows the decision"
        )


@app.command()
def rollouts(
    limit: int = typer.Option(10, min=1, max=1000, help="The most recent this many."),
    server: str = ServerOpt,
    token: str | None = TokenOpt,
) -> None:
    """Recent rollouts: status, the canary's and the fleet's counts so far, and the reason of a decision."""
    for r in _call(server, token, "GET", "/rollouts", params={"limit": limit}):
        console.print(rollout_line(r), soft_wrap=True, markup=False)


def rollout_line(r: dict[str, Any]) -> str:
    """``rollout 3: vla-… rolling_out | running 1/2: arm-1 | pending: arm-2 | canary … | reason``."""
    line = f"rollout {r['id']}: {r['version']} {r['status']}"
    states = r.get("robot_states") or {}
    by_state: dict[str, list[str]] = {}
    for robot, st in states.items():
        label = f"{robot} ({st['reason']})" if st.get("reason") else robot
        by_state.setdefault(st["state"], []).append(label)
    if states:
        line += f" | running {len(by_state.get('running', []))}/{len(states)}"
    for state in ("running", "pending", "waiting", "kept", "refused", "rolled_back"):
        if by_state.get(state):
            line += f" | {state.replace('_', ' ')}: {', '.join(by_state[state])}"
    if r["canary"]:
        line += f" | canary {r['canary_successes']}/{r['canary_episodes']} vs fleet "
        line += f"{r['fleet_successes']}/{r['fleet_episodes']}"
    return line + (f" | {r['reason']}" if r["reason"] else "")


@app.command()
def rollback(
    to: str | None = typer.Option(None, "--to", help="Version to go back to (default: each robot's previous)."),
    robots: str | None = typer.Option(None, help="Comma-separated robot ids (default: all)."),
    server: str = ServerOpt,
    token: str | None = TokenOpt,
) -> None:
    """Roll robots back to their previous (or a named) version, in one call."""
    body = {"to": to, "robots": [r.strip() for r in robots.split(",") if r.strip()] if robots else None}
    out = _call(server, token, "POST", "/rollback", json=body)
    for scope, version in out["moved"].items():
        console.print(f"{scope} → {version}")
    for scope, why in out["skipped"].items():
        console.print(f"[yellow]skipped {scope}: {why}[/yellow]")


def table_width(table: Any) -> int:
    """The width a table needs with none of its cells cut."""
    from rich.measure import Measurement

    return Measurement.get(console, console.options.update(width=10_000), table).maximum


@app.command()
def status(
    server: str = ServerOpt,
    token: str | None = TokenOpt,
    as_json: bool = typer.Option(False, "--json", help="The server's answer as JSON (for scripts)."),
) -> None:
    """Robots with their running and desired versions."""
    from rich.table import Table

    out = _call(server, token, "GET", "/robots")
    if as_json:
        print(json.dumps(out, default=str))
        return
    if not out:
        console.print("no robot has connected yet (start one: flywheel robot run --server ...)")
        return
    table = Table(title=f"robots at {server}")
    for col in ("robot", "running", "desired", "last seen", "state", "last episode"):
        table.add_column(col, no_wrap=True)  # ids and versions are copied from here: never cut or folded
    for r in out:
        moving = r.get("desired_version") not in (None, r.get("running_version"))
        state = "stale" if r.get("stale") else ("swapping" if moving else "ok")
        table.add_row(
            r["robot_id"],
            r.get("running_version") or "-",
            r.get("desired_version") or "-",
            str(r.get("last_seen") or "never")[:19].replace("T", " "),
            state,
            r.get("last_episode_id") or "-",
        )
    Console(width=max(console.width, table_width(table))).print(table)  # wider than the terminal rather than cut
    latest = _call(server, token, "GET", "/rollouts", params={"limit": 1})
    if latest:
        console.print("latest " + rollout_line(latest[0]), soft_wrap=True, markup=False)
