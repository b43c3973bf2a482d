"""``flywheel demo``: the whole flywheel on one machine, embedded defaults (no Redis, PostgreSQL or GPU).

1. **demonstrate**: the scripted expert records a few demonstrations on the simulated arm;
2. **base policy**: SFT of a VLA on them (``trainer.sft``);
3. **deploy**: the control plane starts (uvicorn on a thread, SQLite registry); the base is registered
   and rolled out; the robot agent (``flywheel robot run --server``) fetches it, verifies and runs it,
   recording successes and failures into the store and indexing them on the server;
4. **cycle**: the trainer's cycle runs inline (``trainer.service.pipeline.run_cycle_inline``): snapshot →
   world model → reward model → imagined GRPO → evaluate → register the candidate;
5. **roll out**: while the robot runs, the candidate is rolled out over REST; the robot hot-swaps to it
   at an episode boundary and keeps recording, now under the candidate's version;
6. **report**: success before and after, per version, on the same scene seeds, with a plot.

Every part is the real one the services use; only their sizes are small enough for a CPU.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()


@dataclass(frozen=True)
class DemoConfig:
    out: Path
    task: str = "drawer-close"
    demos: int = 5  # N expert demonstrations: 5 gives a base in the 20–60% band (docs/policy.md)
    sft_preset: str = "small"
    sft_steps: int = 400
    base_episodes: int = 16  # P: the base policy's real (simulated) rollouts the cycle learns from
    after_episodes: int = 16  # the candidate's episodes after the hot swap (same scene seeds as the base's)
    cycle_preset: str = "tiny"  # world model, reward model
    world_model_steps: int = 300
    reward_model_steps: int = 200
    grpo_iterations: int = 6
    max_steps: int | None = None  # per episode; None: the task's
    seed: int = 1000  # scene seed of the first deployed episode (demonstrations use 0..demos-1)

    @classmethod
    def quick(cls, out: Path, task: str = "drawer-close") -> DemoConfig:
        """Smallest sizes that still run every stage (the test of the demo)."""
        return cls(
            out=out, task=task, demos=2, sft_preset="tiny", sft_steps=20, base_episodes=4, after_episodes=2,
            world_model_steps=4, reward_model_steps=10, grpo_iterations=1, max_steps=24,
        )  # fmt: skip


def run_demo(config: DemoConfig) -> dict[str, Any]:
    from serving.embedded import EmbeddedServer
    from serving.settings import Settings

    out = config.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    store_dir = out / "episodes"
    started = time.monotonic()
    console.rule(f"[bold]vla-flywheel demo[/bold] · task {config.task} · output in {out}")

    _stage(1, f"the scripted expert records {config.demos} demonstrations")
    _robot_run(config, store_dir, policy="scripted", episodes=config.demos, seed=0, max_steps=None)

    _stage(2, f"SFT of the base VLA ({config.sft_preset}, {config.sft_steps} steps) on the demonstrations")
    base_dir = _train_base(config, store_dir, out / "policies" / "base")

    with EmbeddedServer(Settings(data_dir=out, auth=False)) as server:
        http = _Http(server.url)
        base = http.register(base_dir)
        http.rollout(base)
        _stage(3, f"deploy: base {base} rolled out; the robot records {config.base_episodes} episodes with it")
        _robot_run(config, store_dir, policy="server", episodes=config.base_episodes, seed=config.seed,
                   max_steps=config.max_steps, server=server.url)  # fmt: skip

        _stage(4, "the trainer's cycle: world model → reward model → imagined GRPO → evaluate → register")
        run = _cycle(config, out, store_dir, base_dir)
        if run.get("state") != "succeeded" or not run.get("candidate"):
            console.print(f"[red]the cycle did not finish:[/red] {run.get('reason') or run.get('state')}")
            raise SystemExit(1)
        candidate = str(run["candidate"]["version"])

        _stage(5, f"roll out candidate {candidate} while the robot runs: hot swap at the next episode boundary")
        after = _run_with_rollout(config, store_dir, server.url, http, candidate)

    _stage(6, "before / after")
    report = _report(config, out, store_dir, base, candidate, run, after)
    console.print(f"\ndone in {time.monotonic() - started:.0f} s · report: {out / 'report.md'}")
    return report


# -- stages ------------------------------------------------------------------------------------------


def _stage(n: int, what: str) -> None:
    console.print(f"\n[bold cyan]{n}.[/bold cyan] {what}")


def _robot_run(
    config: DemoConfig,
    store_dir: Path,
    *,
    policy: str,
    episodes: int,
    seed: int,
    max_steps: int | None,
    server: str | None = None,
) -> None:
    """``flywheel robot run`` itself, called as a function (the operator's command, live display and all)."""
    from robot_agent.cli import LabelMode
    from robot_agent.cli import run as robot_run

    robot_run(
        robot_name="sim", task=config.task, policy_spec=policy, episodes=episodes, store_dir=store_dir, seed=seed,
        max_steps=max_steps, noise=0.1, label=LabelMode.sim, camera=None, size=64, robot_id="sim-0",
        realtime=False, safety=None, buffer_s=1.0, server=server, token=None, swap_at="episode",
        cache=config.out / "robot_cache",
    )  # fmt: skip


def _train_base(config: DemoConfig, store_dir: Path, out: Path) -> Path:
    from trainer.sft import SFTConfig, train_sft

    cfg = SFTConfig(preset=config.sft_preset, steps=config.sft_steps, tasks=(config.task,))
    result = train_sft(store_dir, out, cfg, progress=True)
    console.print(f"base policy: {out} (final loss {_last_loss(result):.3f})")
    return out


def _last_loss(result: Any) -> float:
    return float(result.losses[-1]) if result.losses else math.nan


def _cycle(config: DemoConfig, out: Path, store_dir: Path, base_dir: Path) -> dict[str, Any]:
    from trainer.service.pipeline import run_cycle_inline
    from trainer.service.settings import ServiceSettings
    from trainer.service.stage import CycleConfig

    cycle = CycleConfig(
        policy=str(base_dir),
        task=config.task,
        preset=config.cycle_preset,
        options={
            "world_model": {"steps": config.world_model_steps},
            "reward_model": {"steps": config.reward_model_steps},
            "grpo": {"iterations": config.grpo_iterations},
        },
    )
    settings = ServiceSettings(data_dir=out, store=str(store_dir))

    def publish(meta: dict[str, Any]) -> None:
        shown = {k: round(v, 3) for k, v in (meta.get("metrics") or {}).items() if isinstance(v, float)}
        console.print(f"  {meta.get('stage', ''):<13} {meta.get('step')}/{meta.get('total')} {shown or ''}",
                      highlight=False)  # fmt: skip

    return run_cycle_inline(cycle, settings, publish=publish)


def _run_with_rollout(config: DemoConfig, store_dir: Path, server: str, http: _Http, candidate: str) -> list[str]:
    """The robot runs 1 + ``after_episodes`` episodes on the server's version; once its first one is
    recorded the candidate is rolled out, so it swaps at that episode boundary, mid-run."""
    from data_store.episodes import EpisodeStore

    before = {e.episode_id for e in EpisodeStore(store_dir).episodes()}
    robot = threading.Thread(
        target=_robot_run,
        args=(config, store_dir),
        kwargs=dict(
            policy="server",
            episodes=1 + config.after_episodes,
            seed=config.seed - 1,
            max_steps=config.max_steps,
            server=server,
        ),
        name="demo-robot",
    )
    robot.start()
    while robot.is_alive() and len(_complete_since(store_dir, before)) < 1:
        time.sleep(0.2)
    http.rollout(candidate)
    robot.join()
    return _complete_since(store_dir, before)


def _complete_since(store_dir: Path, before: set[str]) -> list[str]:
    from data_store.episodes import EpisodeStore

    return [e.episode_id for e in EpisodeStore(store_dir).episodes(status="complete") if e.episode_id not in before]


# -- the report --------------------------------------------------------------------------------------


def _report(
    config: DemoConfig, out: Path, store_dir: Path, base: str, candidate: str, run: dict[str, Any], after: list[str]
) -> dict[str, Any]:
    from data_store.episodes import EpisodeStore

    store = EpisodeStore(store_dir)
    rows: dict[str, dict[str, Any]] = {}
    for label, version in (("base", base), ("candidate", candidate)):
        eps = [e for e in store.episodes(policy_version=version, status="complete") if e.success != "unknown"]
        wins = sum(e.success == "true" for e in eps)
        rows[label] = {"version": version, "episodes": len(eps), "successes": wins, **_wilson(wins, len(eps))}
    swapped = [store.info(e).policy_version for e in after]
    metrics = {
        f"{p['stage']}.{k}": v
        for p in run.get("progress", [])
        for k, v in (p.get("metrics") or {}).items()
        if isinstance(v, int | float)
    }
    report = {"config": {k: str(v) for k, v in asdict(config).items()}, "success": rows, "cycle_metrics": metrics,
              "versions_after_rollout": swapped, "run_id": run.get("run_id")}  # fmt: skip
    (out / "report.json").write_text(json.dumps(report, indent=2))
    _plot(rows, out / "report.png", config.task)
    _markdown(report, out / "report.md")

    table = Table(title=f"{config.task}: true success on the simulated arm")
    for col in ("policy", "version", "success", "95% interval"):
        table.add_column(col)
    for label, r in rows.items():
        table.add_row(label, r["version"], f"{r['successes']}/{r['episodes']} = {r['rate']:.0%}",
                      f"[{r['low']:.0%}, {r['high']:.0%}]")  # fmt: skip
    console.print(table)
    if base == candidate:
        console.print("[yellow]the candidate is the base itself: GRPO had no learning signal (see report.md)[/yellow]")
    return report


def _wilson(k: int, n: int, z: float = 1.96) -> dict[str, float]:
    if n == 0:
        return {"rate": math.nan, "low": math.nan, "high": math.nan}
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return {"rate": p, "low": max(0.0, centre - half), "high": min(1.0, centre + half)}


def _plot(rows: dict[str, dict[str, Any]], path: Path, task: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{k}\n{v['version']}" for k, v in rows.items()]
    rates = [v["rate"] for v in rows.values()]
    errs = [[v["rate"] - v["low"] for v in rows.values()], [v["high"] - v["rate"] for v in rows.values()]]
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
    ax.bar(labels, rates, yerr=errs, capsize=6, color=["#8a9bb0", "#3b7dd8"])
    ax.set_ylim(0, 1)
    ax.set_ylabel("success rate (Wilson 95%)")
    ax.set_title(f"{task}: before and after one flywheel cycle")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _markdown(report: dict[str, Any], path: Path) -> None:
    lines = ["# vla-flywheel demo", "", "| policy | version | success | 95% interval |", "|---|---|---|---|"]
    for label, r in report["success"].items():
        lines.append(f"| {label} | `{r['version']}` | {r['successes']}/{r['episodes']} = {r['rate']:.0%} "
                     f"| [{r['low']:.0%}, {r['high']:.0%}] |")  # fmt: skip
    lines += ["", "![before and after](report.png)", "", "## The cycle", ""]
    lines += [f"- {k}: {v:.4g}" for k, v in sorted(report["cycle_metrics"].items())]
    base, cand = report["success"]["base"], report["success"]["candidate"]
    if base["episodes"] and cand["episodes"] and cand["low"] <= base["high"] and base["low"] <= cand["high"]:
        lines += ["", "The two 95% intervals overlap: with this few episodes the difference is not significant. "
                  "`flywheel bench paper` measures the effect on ≥ 100 seeded episodes per task."]  # fmt: skip
    if base["version"] == cand["version"]:
        lines += [
            "",
            "The candidate is the base itself: imagined GRPO made no update (every group was filtered: all "
            "rollouts of a start succeeded or all failed), so its weights, and version, are the base's.",
        ]
    lines += ["", f"Versions the robot ran after the rollout call, episode by episode: "
              f"{', '.join(report['versions_after_rollout'])}", ""]  # fmt: skip
    path.write_text("\n".join(lines))


class _Http:
    """The operator's REST calls (the demo's server runs with auth off: a local, single-user machine)."""

    def __init__(self, url: str) -> None:
        import httpx

        self.client = httpx.Client(base_url=url, timeout=120)

    def _ok(self, r: Any) -> Any:
        if r.status_code >= 400:
            raise RuntimeError(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text}")
        return r.json()

    def register(self, folder: Path) -> str:
        return str(self._ok(self.client.post("/policies/from-path", json={"path": str(folder)}))["policy"]["version"])

    def rollout(self, version: str) -> None:
        self._ok(self.client.post("/rollouts", json={"version": version}))

    def alias(self, name: str) -> str:
        return str(self._ok(self.client.get(f"/policies/{name}"))["version"])
