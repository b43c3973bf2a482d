"""The trainer service's commands: ``flywheel train cycle``, ``flywheel train status``, ``flywheel worker``,
``flywheel beat``. typer and rich only at module level; Celery loads inside the commands."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table

console = Console()
FINAL = ("succeeded", "failed")
STATE_STYLE = {"done": "green", "succeeded": "green", "running": "yellow", "failed": "red", "queued": "dim"}


def styled(text: str, state: str) -> str:
    style = STATE_STYLE.get(state, "none")
    return f"[{style}]{text}[/{style}]"


def cycle(
    policy: str = typer.Option("", help="The policy to improve: an artifact folder, or a registry version or alias."),
    task: str = typer.Option("", help="Train on this task's episodes only (default: every complete episode)."),
    recipe: str = typer.Option("", help="The recipe (trainer/recipe.py): default | quick. Default: default."),
    set_: list[str] = typer.Option(
        [], "--set", help="A recipe setting, KEY=VALUE (JSON value), e.g. --set iterations=4 --set kir_share=0.5."
    ),
    sim_task: str = typer.Option("", help="Also judge the candidate in the simulator on this Meta-World task."),
    sim_episodes: int = typer.Option(0, min=0, help="Simulator scenes for that judgement."),
    continue_from: str = typer.Option("", help="Fine-tune this run's world and reward models (a run id, or 'last')."),
    seed: int = typer.Option(0),
    config: Path | None = typer.Option(None, help="A JSON CycleConfig; the options above override its fields."),
    inline: bool = typer.Option(False, help="Run every stage in this process, without a broker or worker."),
    resume: str = typer.Option("", help="Queue this existing run again: done stages are skipped, the rest resume."),
    wait: bool = typer.Option(False, help="Follow the run with progress bars until it ends."),
) -> None:
    """Start one flywheel cycle (snapshot → world model → reward model → imagined GRPO → judge → register)."""
    from trainer.service.pipeline import resume_cycle, run_cycle_inline, submit_cycle
    from trainer.service.settings import load_settings
    from trainer.service.stage import CycleConfig, StageError

    base: dict[str, Any] = {}
    if config is not None:
        try:
            base = json.loads(config.read_text())
        except (OSError, ValueError) as e:
            raise typer.BadParameter(f"cannot read {config}: {e}", param_hint="--config") from e
        if not isinstance(base, dict):
            raise typer.BadParameter(f"{config}: expected a JSON object", param_hint="--config")
    fields = {"policy": policy, "task": task, "recipe": recipe, "sim_task": sim_task, "continue_from": continue_from}
    base.update({k: v for k, v in fields.items() if v})
    if sim_episodes:
        base["sim_episodes"] = sim_episodes
    if seed:
        base["seed"] = seed
    if set_:
        base["overrides"] = {**dict(base.get("overrides") or {}), **_settings(set_)}
    try:
        cfg = CycleConfig.from_json(base)
        cfg.resolved_recipe()
    except (TypeError, ValueError) as e:
        raise typer.BadParameter(f"not a cycle config: {e}", param_hint="--config / --recipe / --set") from e
    settings = load_settings()
    try:
        if resume:
            resume_cycle(resume, settings)
            run_id = resume
        elif inline:
            result = run_cycle_inline(cfg, settings)
            run_id = result["run_id"]
        else:
            run_id = submit_cycle(cfg, settings)
    except (StageError, KeyError) as e:
        console.print(f"[red]{escape(str(e.args[0] if e.args else e))}[/red]")
        raise typer.Exit(1) from None
    except Exception as e:  # the broker is down, the data dir is not writable: one line, no traceback
        console.print(f"[red]cannot start the cycle: {type(e).__name__}: {escape(str(e))}[/red]")
        raise typer.Exit(1) from None
    console.print(f"run [bold]{run_id}[/bold]" + (" (inline)" if inline else f" queued on {_where(settings)}"))
    if wait or inline:
        record = _follow(run_id) if wait else result
        console.print(status_view(record))
        if record["state"] == "failed":
            raise typer.Exit(1)


def _settings(pairs: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` pairs as recipe overrides; a value is JSON when it parses (numbers, true, {...})."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--set")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def status(
    run: str = typer.Argument("", help="The run id (default: list the latest runs)."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Refresh until the run ends."),
    as_json: bool = typer.Option(False, "--json", help="Print the run record as JSON."),
) -> None:
    """Show a run's stages with progress bars, metrics and, if it failed, why."""
    from trainer.service.progress import list_runs, run_status

    if not run:
        console.print(runs_table(list_runs()))
        return
    try:
        record = _follow(run) if follow else run_status(run)
    except (KeyError, ValueError) as e:
        console.print(f"[red]{escape(str(e.args[0] if e.args else e))}[/red]")
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(record, indent=1, sort_keys=True))
    else:
        console.print(status_view(record))


def worker(
    queues: str = typer.Option("gpu,cpu", "--queues", "-Q", help="Queues to take work from: gpu, cpu or both."),
    pool: str = typer.Option("solo", help="solo (one task in this process; required for GPU) or prefork."),
    concurrency: int = typer.Option(1, min=1, help="Tasks at once (prefork only)."),
    hostname: str = typer.Option("", "--hostname", "-n", help="Worker name (default: flywheel@<host>)."),
    loglevel: str = typer.Option("info"),
) -> None:
    """Start a trainer worker (Celery) on the configured broker (FLYWHEEL_BROKER_URL; default: SQLite, no server)."""
    names = [q.strip() for q in queues.split(",") if q.strip()]
    if not names or any(q not in ("gpu", "cpu") for q in names):
        raise typer.BadParameter(f"expected gpu, cpu or gpu,cpu; got {queues!r}", param_hint="--queues")
    if "gpu" in names and pool != "solo":
        why = "a GPU worker runs the solo pool: CUDA cannot be used after a fork"
        raise typer.BadParameter(why, param_hint="--pool")
    from trainer.service.celery_app import app
    from trainer.service.settings import load_settings

    argv = ["worker", "-Q", ",".join(names), "-P", pool, "-c", str(concurrency), "--loglevel", loglevel]
    argv += ["-n", hostname or "flywheel@%h"]
    if not load_settings().on_redis:  # the SQLite transport has no broadcast: no gossip, mingle or events
        argv += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    app.worker_main(argv)


def beat(loglevel: str = typer.Option("info")) -> None:
    """Start the nightly schedule (celery beat): a cycle at FLYWHEEL_NIGHTLY_HOUR:MINUTE when enough new episodes."""
    from trainer.service.celery_app import app

    # the in-memory scheduler: Celery's default keeps its state in a shelve (pickle) file, and the
    # nightly trigger needs no memory of its own (its watermark lives on the data dir).
    app.start(["beat", "--scheduler", "celery.beat:Scheduler", "--loglevel", loglevel])


def _where(settings: Any) -> str:
    return settings.broker.split("@")[-1] if settings.on_redis else settings.broker


def _follow(run_id: str, every_s: float = 0.5) -> dict[str, Any]:
    """Until the run ends: a live view on a terminal; elsewhere (a log file, systemd, CI) one ``progress_line`` per
    ``FLYWHEEL_PROGRESS_INTERVAL`` seconds and at each change of stage."""
    from data_store.progress import interval_s
    from trainer.service.progress import run_status

    record = run_status(run_id)
    if not console.is_terminal:
        said, at = "", 0.0
        while record["state"] not in FINAL:
            line = progress_line(record)
            stage_changed = line.split(" · ")[:2] != said.split(" · ")[:2]
            if stage_changed or time.monotonic() - at >= interval_s():
                console.print(line, soft_wrap=True, highlight=False, markup=False)
                said, at = line, time.monotonic()
            time.sleep(every_s)
            record = run_status(run_id)
        return record
    with Live(status_view(record), console=console, refresh_per_second=4, transient=True) as live:
        while record["state"] not in FINAL:
            time.sleep(every_s)
            record = run_status(run_id)
            live.update(status_view(record))
    return record


def progress_line(record: dict[str, Any]) -> str:
    """One line for a log: the run, its state, the stage at work with its step/total and metrics."""
    parts = [f"run {record['run_id']} {record['state']}"]
    working = [p for p in record.get("progress", []) if p["state"] == "running"]
    done = sum(p["state"] == "done" for p in record.get("progress", []))
    parts.append(f"{done}/{len(record.get('progress', []))} stages done")
    for p in working:
        total, step = p.get("total"), p.get("step") or 0
        where = f"{p['stage']} {step}/{total or '?'}" + (f" ({step / total:.0%})" if total else "")
        shown = {k: v for k, v in (p.get("metrics") or {}).items() if not any(w in k for w in _DETAIL)}
        parts.append(where + "".join(f" {k}={v:.4g}" for k, v in sorted(shown.items())))
    return " · ".join(parts)


# in the run record, not in the one-line view (the action-replay check is shown as its one line instead)
_DETAIL = ("ci95", "sampling", "p_worse", "p_better", "_n", "agreement_")


def status_view(record: dict[str, Any]) -> Group:
    """The run's header line, one progress bar per stage, and the candidate or the reason it failed."""
    state = record["state"]
    head = f"run [bold]{record['run_id']}[/bold]  {styled(state, state)}"
    if record.get("key"):
        head += f"  key {record['key']}"
    table = Table(box=None, pad_edge=False)
    for col in ("stage", "state", "progress", "step", "metrics"):
        table.add_column(col)
    for p in record.get("progress", []):
        total = p.get("total") or (1 if p["state"] == "done" else None)
        step = p.get("step") or (total if p["state"] == "done" else 0)
        bar = ProgressBar(total=float(total) if total else None, completed=float(step or 0), width=24)
        shown = {k: v for k, v in (p.get("metrics") or {}).items() if not any(w in k for w in _DETAIL)}
        metrics = "  ".join(f"{k}={v:.4g}" for k, v in sorted(shown.items()))
        label = p["state"] + (" (reused)" if p.get("reused") else "") + (" (resumed)" if p.get("resumed") else "")
        table.add_row(p["stage"], styled(label, p["state"]), bar, f"{step}/{total or '?'}", metrics)
    parts: list[Any] = [head, table]
    if record.get("reason"):
        parts.append(f"[red]reason: {escape(record['reason'])}[/red]")
    results = record.get("results") or {}
    checked = ((results.get("grpo") or {}).get("info") or {}).get("agreement")
    if checked:  # before GRPO: imagination against the simulated arm (trainer/agreement.py)
        parts.append(f"  imagination vs the arm: {escape(str(checked))}")
    evaluation = (results.get("evaluate") or {}).get("info") or {}
    for line in evaluation.get("figures", []):
        parts.append(f"  {escape(line)}")
    if record.get("outcome") == "no improvement":
        parts.append(f"[yellow]no candidate: {escape(str(record.get('outcome_reason') or ''))}[/yellow]")
    if record.get("candidate"):
        c = record["candidate"]
        parts.append(
            f"[green]candidate {c['version']} promoted[/green]: {escape(str(record.get('outcome_reason') or ''))}"
        )
    return Group(*parts)


def runs_table(runs: list[dict[str, Any]]) -> Table:
    table = Table(title="flywheel runs")
    table.add_column("run", no_wrap=True, min_width=22)  # a run id is copied from here: never cut
    for col in ("state", "trigger", "episodes", "candidate", "reason"):
        table.add_column(col, overflow="fold")
    for r in runs:
        episodes = str(len(r["snapshot"]["episodes"])) if r.get("snapshot") else "-"
        candidate = (r.get("candidate") or {}).get("version") or r.get("outcome") or "-"
        reason = escape(r.get("reason") or "")
        table.add_row(r["run_id"], styled(r["state"], r["state"]), r["trigger"], episodes, candidate, reason)
    return table


def bench_service(
    redis: str = typer.Option("redis://127.0.0.1:6379/15", help="The Redis to measure (keys under a fresh prefix)."),
    tasks: int = typer.Option(30, min=3, help="Round trips per broker."),
) -> None:
    """Task round trip through a real worker on the embedded SQLite broker and on Redis (JSON lines)."""
    from trainer.bench.service import run_bench

    try:
        for line in run_bench(redis, tasks):
            typer.echo(json.dumps(line))
    except Exception as e:  # Redis down, a worker that never answered
        console.print(f"[red]bench service: {type(e).__name__}: {escape(str(e))}[/red]")
        raise typer.Exit(1) from None


def register(train: typer.Typer, bench: typer.Typer) -> None:
    """Add ``train cycle``, ``train status`` and ``bench service``."""
    train.command()(cycle)
    train.command()(status)
    bench.command("service")(bench_service)
