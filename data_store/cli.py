"""`flywheel data ...`: list, show, label, import and export the recorded episodes.

Only typer and rich at module level (``flywheel --help`` stays instant); the store, numpy, zarr, pyarrow
and PyAV are imported inside the commands. User mistakes (no store, unknown id, bad filter) end with one
red line and exit code 1, never a traceback.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from data_store.episode_info import EpisodeInfo
    from data_store.episodes import EpisodeStore

app = typer.Typer(no_args_is_help=True, help="The episode store: list, show, label, import, export.")
console = Console()

DEFAULT_STORE = "flywheel_data/episodes"
StoreOption = typer.Option(
    DEFAULT_STORE, "--store", envvar="FLYWHEEL_STORE", help="Episode store folder.", show_default=True
)
# The filters of `data ls` and `data export`: one definition each.
TaskFilter = typer.Option(None, "--task", help="Only this task (repeatable).")
SuccessFilter = typer.Option(None, "--success", help="Only episodes with this success label.")
PolicyFilter = typer.Option(None, "--policy", help="Only this policy version.")
RobotFilter = typer.Option(None, "--robot", help="Only this robot id.")
SinceFilter = typer.Option(None, "--since", help="Started at or after (ISO date/time, UTC).")
UntilFilter = typer.Option(None, "--until", help="Started before (ISO date/time, UTC).")


class ExportFormat(StrEnum):
    lerobot = "lerobot"
    mcap = "mcap"


class ImportFormat(StrEnum):
    lerobot = "lerobot"


class Label(StrEnum):
    true = "true"
    false = "false"
    unknown = "unknown"


def _fail(message: str) -> NoReturn:
    console.print(f"[red]error:[/red] {message}", highlight=False, markup=True)
    raise typer.Exit(1)


def _open_store(store: Path, *, create: bool = False) -> EpisodeStore:
    from data_store.episodes import EpisodeStore

    if not create and not store.is_dir():
        _fail(f"no episode store at {store} (record episodes first, or pass --store / set FLYWHEEL_STORE)")
    return EpisodeStore(store)


def _info(s: EpisodeStore, episode_id: str) -> EpisodeInfo:
    from data_store.episodes import EpisodeNotFound

    try:
        return s.info(episode_id)
    except EpisodeNotFound:
        _fail(f"no episode {episode_id!r} in {s.root} (see `flywheel data ls`)")


def _time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"expected an ISO date/time such as 2026-11-21 or 2026-11-21T07:30, got {value!r}", param_hint=option
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _when(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _select(
    s: EpisodeStore,
    ids: list[str] | None,
    task: list[str] | None,
    success: Label | None,
    policy: str | None,
    robot: str | None,
    since: str | None,
    until: str | None,
    status: list[str] | None,
) -> list[EpisodeInfo]:
    if ids:
        return [_info(s, i) for i in ids]
    return s.episodes(
        task=task or None,
        success=success.value if success else None,
        policy_version=policy,
        robot_id=robot,
        since=_time(since, "--since"),
        until=_time(until, "--until"),
        status=status or None,
    )


_SUCCESS_STYLE = {"true": "[green]yes[/green]", "false": "[red]no[/red]", "unknown": "[dim]?[/dim]"}
_STATUS_STYLE = {"complete": "complete", "recording": "[yellow]recording[/yellow]", "aborted": "[red]aborted[/red]"}


@app.command("ls")
def ls(
    store: Path = StoreOption,
    task: list[str] = TaskFilter,
    success: Label = SuccessFilter,
    policy: str = PolicyFilter,
    robot: str = RobotFilter,
    since: str = SinceFilter,
    until: str = UntilFilter,
    status: list[str] = typer.Option(None, "--status", help="recording | complete | aborted (repeatable)."),
    limit: int = typer.Option(50, "--limit", min=0, help="Show the newest N (0: all)."),
) -> None:
    """List episodes, oldest first, through the catalog."""
    s = _open_store(store)
    for st in status or []:
        if st not in ("recording", "complete", "aborted"):
            raise typer.BadParameter(f"expected recording, complete or aborted, got {st!r}", param_hint="--status")
    found = _select(s, None, task, success, policy, robot, since, until, status)
    shown = found[-limit:] if limit else found
    table = Table(
        title=f"{len(found)} episodes in {s.root}" + (f" (newest {len(shown)})" if len(shown) < len(found) else "")
    )
    # a narrow terminal (80 columns) gets the columns that identify an episode; a wide one gets them all
    wide = console.width >= 130
    columns = ["task", "status", "success", "steps", "policy"]
    if wide:
        columns += ["seconds", "robot", "started (UTC)"]
    table.add_column("episode", no_wrap=True)  # the id is what the user copies: never cut it
    for col in columns:
        table.add_column(col, justify="right" if col in ("steps", "seconds") else "left", no_wrap=col != "policy")
    for e in shown:
        row = [e.task, _STATUS_STYLE.get(e.status, e.status), _SUCCESS_STYLE.get(e.success, e.success),
               str(e.length), e.policy_version]  # fmt: skip
        if wide:
            row += [f"{e.duration_s:.1f}", e.robot_id, _when(e.started_at)]
        table.add_row(e.episode_id, *row)
    console.print(table)


@app.command()
def show(
    episode_id: str = typer.Argument(..., help="Episode id (see `flywheel data ls`)."),
    store: Path = StoreOption,
    frames: Path = typer.Option(None, "--frames", help="Write a contact sheet of the episode's frames to this PNG."),
    count: int = typer.Option(16, "--count", min=1, max=256, help="Frames on the contact sheet."),
) -> None:
    """An episode's attributes and a summary of its arrays."""
    import json

    import numpy as np

    s = _open_store(store)
    info = _info(s, episode_id)
    reader = s.open(episode_id)
    table = Table(title=f"episode {info.episode_id}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    rows: list[tuple[str, Any]] = [
        ("task", info.task),
        ("instruction", info.instruction),
        ("status", _STATUS_STYLE.get(info.status, info.status)),
        ("success", _SUCCESS_STYLE.get(info.success, info.success)),
        ("reason", info.reason or ""),
        ("steps", f"{info.length} ({info.duration_s:.1f} s at {info.fps:g} fps)"),
        ("robot", info.robot_id),
        ("policy", info.policy_version),
        ("started (UTC)", _when(info.started_at)),
        ("ended (UTC)", _when(info.ended_at)),
        ("cameras", ", ".join(f"{n} {h}x{w}" for n, (h, w) in info.spec.cameras.items()) or "none"),
        ("depth", ", ".join(f"{n} {h}x{w}" for n, (h, w) in info.spec.depth_cameras.items()) or "none"),
        ("state", f"float32 [{info.spec.state_dim}] {' '.join(info.spec.state_names)}"),
        ("action", f"float32 [{info.spec.action_dim}] {' '.join(info.spec.action_names)}"),
        ("schema", str(info.schema_version)),
        ("meta", json.dumps(info.meta) if info.meta else ""),
    ]
    if len(reader):
        actions = reader.actions()
        stamps = reader.timestamps()
        median_step = float(np.median(np.diff(stamps))) if len(stamps) > 1 else 0.0
        fmt = lambda v: " ".join(f"{x:+.3f}" for x in v)  # noqa: E731
        rows += [
            ("action min", fmt(actions.min(axis=0))),
            ("action max", fmt(actions.max(axis=0))),
            ("action mean", fmt(actions.mean(axis=0))),
            (
                "timestamps",
                f"{stamps[0]:.3f} .. {stamps[-1]:.3f} s (median step {median_step:.3f} s)",
            ),
        ]
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    if frames is not None:
        if not len(reader) or not reader.cameras:
            _fail(f"episode {episode_id} has no frames to show")
        from data_store.contact_sheet import contact_sheet, write_png

        sheet = contact_sheet(reader, count)
        write_png(sheet, frames)
        console.print(f"wrote {frames} ({sheet.shape[1]}x{sheet.shape[0]})")


@app.command()
def label(
    episode_id: str = typer.Argument(..., help="Episode id."),
    success: bool = typer.Option(None, "--success/--failure", help="The operator's verdict."),
    store: Path = StoreOption,
) -> None:
    """Label an episode a success or a failure (where the robot cannot tell)."""
    if success is None:
        raise typer.BadParameter("pass --success or --failure")
    s = _open_store(store)
    _info(s, episode_id)
    try:
        info = s.label(episode_id, success)
    except ValueError as e:
        _fail(str(e))
    console.print(f"{info.episode_id}: success = {_SUCCESS_STYLE[info.success]}")


@app.command("rebuild-catalog")
def rebuild_catalog(store: Path = StoreOption) -> None:
    """Rebuild the catalog from the episode groups alone (after copying episodes in, or a lost catalog)."""
    s = _open_store(store)
    n = s.rebuild_catalog()
    console.print(f"catalog rebuilt: {n} episodes in {s.root}")


@app.command("export")
def export(
    out: Path = typer.Option(..., "--out", help="Output folder."),
    fmt: ExportFormat = typer.Option(
        ExportFormat.lerobot, "--format", help="lerobot: LeRobotDataset v3.0; mcap: rosbag2."
    ),
    ids: list[str] = typer.Argument(None, help="Episode ids (default: every complete episode matching the filters)."),
    store: Path = StoreOption,
    task: list[str] = TaskFilter,
    success: Label = SuccessFilter,
    policy: str = PolicyFilter,
    robot: str = RobotFilter,
    since: str = SinceFilter,
    until: str = UntilFilter,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out (lerobot)."),
) -> None:
    """Export episodes as a LeRobotDataset v3.0 (Parquet + AV1 MP4) or as rosbag2/MCAP bags."""
    from rich.progress import Progress

    s = _open_store(store)
    episodes = _select(s, ids, task, success, policy, robot, since, until, None if ids else ["complete"])
    if not episodes:
        _fail("no episodes match")
    if fmt is ExportFormat.mcap:
        try:
            from data_store.mcap import export_mcap
        except ImportError as e:
            _fail(f"MCAP export is not available ({e})")
        try:
            bags = export_mcap(s, episodes, out)
        except (RuntimeError, FileExistsError) as e:
            _fail(str(e))
        console.print(f"wrote {len(bags)} bags under {out}")
        return
    from data_store.lerobot_v3 import LeRobotFormatError, export_lerobot

    with Progress(console=console, transient=True) as progress:
        bar = progress.add_task("exporting", total=len(episodes))
        try:
            export_lerobot(s, episodes, out, overwrite=overwrite, progress=lambda n: progress.advance(bar, n))
        except LeRobotFormatError as e:
            _fail(str(e))
    console.print(
        f"wrote a LeRobotDataset v3.0 of {len(episodes)} episodes, {sum(e.length for e in episodes)} frames, at {out}"
    )


@app.command("import")
def import_(
    src: Path = typer.Argument(..., help="A LeRobotDataset v3.0 folder."),
    fmt: ImportFormat = typer.Option(ImportFormat.lerobot, "--format", help="Only lerobot (v3.0) for now."),
    store: Path = StoreOption,
    robot: str = typer.Option(None, "--robot", help="Robot id to record (default: the dataset's robot_type)."),
) -> None:
    """Import a LeRobotDataset v3.0 (e.g. one recorded with lerobot) into the store."""
    from rich.progress import Progress

    from data_store.lerobot_v3 import LeRobotFormatError, import_lerobot

    if not src.is_dir():
        _fail(f"no dataset folder at {src}")
    s = _open_store(store, create=True)
    with Progress(console=console, transient=True) as progress:
        bar = progress.add_task("importing", total=None)
        try:
            ids = import_lerobot(src, s, robot_id=robot, progress=lambda n: progress.advance(bar, n))
        except LeRobotFormatError as e:
            _fail(str(e))
    console.print(f"imported {len(ids)} episodes into {s.root}")
