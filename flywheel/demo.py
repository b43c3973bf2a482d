"""``flywheel demo``: the whole flywheel on one machine, embedded defaults (no Redis, PostgreSQL or GPU).

1. **demonstrate**: the scripted expert records a few demonstrations on the simulated arm;
2. **base policy**: SFT of a VLA on them (``trainer.sft``);
3. **deploy**: the control plane starts (uvicorn on a thread, SQLite registry); the base is registered
   and rolled out; the robot agent (``flywheel robot run --server``) fetches it, verifies and runs it,
   recording successes and failures into the store and indexing them on the server;
4. **cycle**: the trainer's cycle runs inline (``trainer.service.pipeline.run_cycle_inline``): the nightly cycle's
   stages with the ``default`` recipe (``trainer/recipe.py``, what ``flywheel bench paper`` measures): snapshot →
   world model → reward model → imagined GRPO → judge (candidate against base at the deployment temperature,
   imagined and on seeded validation scenes of the simulated arm, paired tests) → register the candidate, only if
   it does not lose;
5. **roll out**, only if promoted: while the robot runs, the candidate is rolled out over REST; the robot
   hot-swaps to it at an episode boundary and keeps recording, now under the candidate's version;
6. **report**: the judge's figures (what decided), and the robot's episodes per version, with a plot.

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
    # the sizes of one task's column of `flywheel bench paper` (docs/rl.md): 10 demonstrations, SFT of the small
    # policy for 600 steps, P = 128 real episodes, the default recipe, 100 validation scenes for the judge
    demos: int = 10
    sft_preset: str = "small"
    sft_steps: int = 600
    base_episodes: int = 128  # P: the base policy's real (simulated) rollouts the cycle learns from
    after_episodes: int = 16  # the candidate's episodes after the hot swap, at the deployment temperature
    recipe: str = "default"  # trainer/recipe.py: the cycle's settings
    judge_scenes: int = 100  # seeded validation scenes the cycle judges candidate and base on
    # the base's episodes for the cycle are recorded at this temperature (the operator's choice: exploring, as
    # WMPO's rollouts do and as `flywheel bench paper` measures); None: the recipe's sampling temperature. The
    # candidate, once promoted, runs at the deployment temperature (0).
    collect_temperature: float | None = None
    max_steps: int | None = None  # per episode; None: the task's
    seed: int = 1000  # scene seed of the first deployed episode (demonstrations use 0..demos-1)

    @classmethod
    def quick(cls, out: Path, task: str = "drawer-close") -> DemoConfig:
        """Smallest sizes that still run every stage (the test of the demo)."""
        return cls(
            out=out, task=task, demos=2, sft_preset="tiny", sft_steps=20, base_episodes=4, after_episodes=2,
            recipe="quick", judge_scenes=4, max_steps=24,
        )  # fmt: skip


MARKER = "demo.json"  # the settings of the demo that made a folder: a rerun knows the folder is a demo's


class NotADemoFolder(ValueError):
    """``--out`` names a folder that holds something other than an earlier demo."""


class DemoFailed(RuntimeError):
    """A stage of the demo failed in a way the report cannot stand for (its message says which)."""


def _clear_previous(out: Path, keep: bool) -> None:
    """A rerun starts clean: an earlier demo's folder is moved to ``<out>.previous`` (``keep``) or deleted. A folder
    that is not a demo's is never touched."""
    import shutil

    if not out.exists() or not any(out.iterdir()):
        return
    if not (out / MARKER).is_file() and not (out / "episodes").is_dir():
        raise NotADemoFolder(f"{out} holds files that are not a demo's; choose another --out")
    if keep:
        previous = out.with_name(out.name + ".previous")
        if previous.exists():
            shutil.rmtree(previous)
        out.rename(previous)
        console.print(f"an earlier demo was in {out}: moved to {previous}; this run starts clean")
    else:
        shutil.rmtree(out)
        console.print(f"an earlier demo was in {out}: deleted (--fresh); this run starts clean")


def run_demo(config: DemoConfig, keep_previous: bool = True) -> dict[str, Any]:
    from serving.embedded import EmbeddedServer
    from serving.settings import Settings

    out = config.out.resolve()
    _clear_previous(out, keep=keep_previous)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(json.dumps({k: str(v) for k, v in asdict(config).items()}, indent=1))
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
        explore = _collect_temperature(config)
        _stage(3, f"deploy: base {base} rolled out; the robot records {config.base_episodes} episodes with it, "
                  f"exploring at temperature {explore:g}")  # fmt: skip
        _robot_run(config, store_dir, policy="server", episodes=config.base_episodes, seed=config.seed,
                   max_steps=config.max_steps, server=server.url, temperature=explore)  # fmt: skip

        _stage(4, "the trainer's cycle: world model → reward model → imagined GRPO → judge → register")
        run = _cycle(config, out, store_dir, base_dir)
        if run.get("state") != "succeeded":
            console.print(f"[red]the cycle did not finish:[/red] {run.get('reason') or run.get('state')}")
            raise SystemExit(1)
        candidate = str(run["candidate"]["version"]) if run.get("candidate") else None
        after: list[str] = []
        if candidate is not None:
            _stage(5, f"roll out candidate {candidate} while the robot runs: hot swap at the next episode boundary")
            after = _run_with_rollout(config, store_dir, server.url, http, candidate)
        else:
            _stage(5, f"no rollout: the candidate was not promoted ({run.get('outcome_reason')}); the robot keeps "
                      f"the base")  # fmt: skip

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
    temperature: float = 0.0,
) -> None:
    """An agent session with the operator's live display, as ``flywheel robot run`` runs it."""
    from robot_agent.display import run_shown
    from robot_agent.session import SessionConfig

    run_shown(
        SessionConfig(
            task=config.task,
            policy=policy,
            episodes=episodes,
            store=store_dir,
            seed=seed,
            max_steps=max_steps,
            label="sim",
            temperature=temperature,
            server=server,
            swap_at="episode",
            cache=config.out / "robot_cache",
        )
    )


def _collect_temperature(config: DemoConfig) -> float:
    from trainer.recipe import recipe

    if config.collect_temperature is not None:
        return config.collect_temperature
    return float(recipe(config.recipe).grpo.temperature)


def _train_base(config: DemoConfig, store_dir: Path, out: Path) -> Path:
    from trainer.sft import SFTConfig, train_sft

    cfg = SFTConfig(preset=config.sft_preset, steps=config.sft_steps, tasks=(config.task,))
    result = train_sft(store_dir, out, cfg, progress=True)
    console.print(f"base policy: {out} (final loss {_last_loss(result):.3f})")
    return out


def _last_loss(result: Any) -> float:
    return float(result.losses[-1]) if result.losses else math.nan


def cycle_config(config: DemoConfig, base_dir: Path, seed: int = 0) -> Any:
    """The demo's cycle: its recipe on its task, judged in the simulator on its validation scenes."""
    from trainer.service.stage import CycleConfig

    return CycleConfig(
        policy=str(base_dir),
        task=config.task,
        recipe=config.recipe,
        sim_task=config.task,
        sim_episodes=config.judge_scenes,
        seed=seed,
    )


def _cycle(config: DemoConfig, out: Path, store_dir: Path, base_dir: Path) -> dict[str, Any]:
    from trainer.service.pipeline import run_cycle_inline
    from trainer.service.settings import ServiceSettings

    cycle = cycle_config(config, base_dir)
    settings = ServiceSettings(data_dir=out, store=str(store_dir))

    def publish(meta: dict[str, Any]) -> None:
        shown = {k: round(v, 3) for k, v in (meta.get("metrics") or {}).items() if isinstance(v, float) and
                 not any(w in k for w in ("ci95", "sampling", "p_worse", "p_better", "_n"))}  # fmt: skip
        console.print(f"  {meta.get('stage', ''):<13} {meta.get('step')}/{meta.get('total')} {shown or ''}",
                      highlight=False)  # fmt: skip

    return run_cycle_inline(cycle, settings, publish=publish)


def _run_with_rollout(config: DemoConfig, store_dir: Path, server: str, http: _Http, candidate: str) -> list[str]:
    """The robot runs 1 + ``after_episodes`` episodes on the server's version; once its first one is
    recorded the candidate is rolled out, so it swaps at that episode boundary, mid-run."""
    from data_store.episodes import EpisodeStore

    before = {e.episode_id for e in EpisodeStore(store_dir).episodes()}
    failed: list[BaseException] = []

    def robot_run() -> None:
        try:
            _robot_run(config, store_dir, policy="server", episodes=1 + config.after_episodes,
                       seed=config.seed - 1, max_steps=config.max_steps, server=server)  # fmt: skip
        except BaseException as e:  # the report must not pass off a dead robot as a finished run
            failed.append(e)

    robot = threading.Thread(target=robot_run, name="demo-robot")
    robot.start()
    while robot.is_alive() and len(_complete_since(store_dir, before)) < 1:
        time.sleep(0.2)
    http.rollout(candidate)
    robot.join()
    if failed:
        error = failed[0]
        raise DemoFailed(f"the robot stopped during the rollout: {type(error).__name__}: {error}") from error
    return _complete_since(store_dir, before)


def _complete_since(store_dir: Path, before: set[str]) -> list[str]:
    from data_store.episodes import EpisodeStore

    return [e.episode_id for e in EpisodeStore(store_dir).episodes(status="complete") if e.episode_id not in before]


# -- the report --------------------------------------------------------------------------------------


def _report(
    config: DemoConfig,
    out: Path,
    store_dir: Path,
    base: str,
    candidate: str | None,
    run: dict[str, Any],
    after: list[str],
) -> dict[str, Any]:
    """report.json, report.md and report.png: the judge's figures (what decided), then the robot's episodes."""
    from data_store.episodes import EpisodeStore
    from data_store.stats import wilson

    store = EpisodeStore(store_dir)
    evaluation = (run.get("results") or {}).get("evaluate") or {}
    figures = dict(evaluation.get("metrics") or {})
    judged: dict[str, dict[str, Any]] = {}
    for where in ("sim", "imagined"):
        for who, prefix in (("base", "parent_"), ("candidate", "")):
            rate = figures.get(f"{prefix}{where}_success")
            if rate is not None:
                low, high = figures[f"{prefix}{where}_ci95_low"], figures[f"{prefix}{where}_ci95_high"]
                judged.setdefault(where, {})[who] = {"rate": rate, "low": low, "high": high}
        if where in judged:
            judged[where]["p_worse"] = figures.get(f"{where}_p_worse")
            judged[where]["p_better"] = figures.get(f"{where}_p_better")
            judged[where]["n"] = figures.get(f"{where}_n")
    robot: dict[str, dict[str, Any]] = {}
    for label, version in (("base", base), ("candidate", candidate)):
        if version is None:
            continue
        eps = [e for e in store.episodes(policy_version=version, status="complete") if e.success != "unknown"]
        wins = sum(e.success == "true" for e in eps)
        r = wilson(wins, len(eps))
        temps = sorted({float((e.meta or {}).get("temperature", 0.0)) for e in eps})
        robot[label] = {"version": version, "episodes": len(eps), "successes": wins, "rate": r.rate, "low": r.low,
                        "high": r.high, "temperatures": temps}  # fmt: skip
    swapped = [store.info(e).policy_version for e in after]
    metrics = {
        f"{p['stage']}.{k}": v
        for p in run.get("progress", [])
        for k, v in (p.get("metrics") or {}).items()
        if isinstance(v, int | float)
    }
    report = {
        "config": {k: str(v) for k, v in asdict(config).items()},
        "deploy_temperature": figures.get("deploy_temperature"),
        "sampling_temperature": figures.get("sampling_temperature"),
        "judged": judged,
        "promoted": candidate is not None,
        "outcome_reason": run.get("outcome_reason"),
        "figures": list((evaluation.get("info") or {}).get("figures") or []),
        # before GRPO: the base's imagined groups replayed action for action on the arm (trainer/agreement.py)
        "agreement": (((run.get("results") or {}).get("grpo") or {}).get("info") or {}).get("agreement"),
        "robot": robot,
        "cycle_metrics": metrics,
        "versions_after_rollout": swapped,
        "run_id": run.get("run_id"),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2))
    _plot(report, out / "report.png", config.task)
    _markdown(report, out / "report.md")

    table = Table(title=f"{config.task}: the cycle's judgement, at the deployment temperature")
    for col in ("where", "base", "candidate", "paired p (candidate worse / better)"):
        table.add_column(col)
    for where, j in judged.items():
        table.add_row(where, _pct(j.get("base")), _pct(j.get("candidate")),
                      f"{j.get('p_worse', math.nan):.3f} / {j.get('p_better', math.nan):.3f}")  # fmt: skip
    console.print(table)
    verdict = "[green]promoted[/green]" if candidate else "[yellow]not promoted[/yellow]"
    console.print(f"{verdict}: {run.get('outcome_reason')}")
    return report


def _pct(r: dict[str, Any] | None) -> str:
    if not r:
        return "–"
    return f"{r['rate']:.0%} [{r['low']:.0%}, {r['high']:.0%}]"


def _plot(report: dict[str, Any], path: Path, task: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = [(f"{where}\n{who}", j[who]) for where, j in report["judged"].items() for who in ("base", "candidate")
            if who in j]  # fmt: skip
    bars += [(f"robot\n{who}", r) for who, r in report["robot"].items() if r["episodes"]]
    fig, ax = plt.subplots(figsize=(1.4 * max(2, len(bars)) + 1, 3.5), dpi=100)
    if bars:
        rates = [b["rate"] for _, b in bars]
        errs = [[b["rate"] - b["low"] for _, b in bars], [b["high"] - b["rate"] for _, b in bars]]
        colors = ["#8a9bb0" if "base" in label else "#3b7dd8" for label, _ in bars]
        ax.bar([label for label, _ in bars], rates, yerr=errs, capsize=6, color=colors)
    ax.set_ylim(0, 1)
    ax.set_ylabel("success rate (95% interval)")
    t = report.get("deploy_temperature")
    ax.set_title(f"{task}: base vs candidate at T={t if t is not None else '?'}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _markdown(report: dict[str, Any], path: Path) -> None:
    t = report.get("deploy_temperature")
    lines = [
        "# vla-flywheel demo",
        "",
        f"## The cycle's judgement: base vs candidate at the deployment temperature T = {t}",
        "",
        "| where | base | candidate | paired p (candidate worse) | paired p (candidate better) |",
        "|---|---|---|---|---|",
    ]
    for where, j in report["judged"].items():
        lines.append(f"| {where} | {_pct(j.get('base'))} | {_pct(j.get('candidate'))} | "
                     f"{j.get('p_worse', math.nan):.3f} | {j.get('p_better', math.nan):.3f} |")  # fmt: skip
    verdict = "**promoted**" if report["promoted"] else "**not promoted**"
    lines += ["", f"{verdict}: {report.get('outcome_reason')}", "", "All figures, including the sampling temperature:",
              ""]  # fmt: skip
    lines += [f"- {f}" for f in report["figures"]]
    if report.get("agreement"):
        lines += ["", "Imagination checked against the arm before GRPO (the base's imagined groups, their actions "
                  f"replayed on the simulated arm): {report['agreement']}"]  # fmt: skip
    lines += ["", "## On the robot (episodes recorded by the robot agent, per version)", "",
              "| policy | version | temperature | success | 95% interval |", "|---|---|---|---|---|"]  # fmt: skip
    for label, r in report["robot"].items():
        temps = ", ".join(f"{t:g}" for t in r.get("temperatures", []))
        lines.append(f"| {label} | `{r['version']}` | {temps} | {r['successes']}/{r['episodes']} = {r['rate']:.0%} "
                     f"| [{r['low']:.0%}, {r['high']:.0%}] |")  # fmt: skip
    lines += ["", "The base's episodes are the cycle's data, recorded exploring at the sampling temperature; the "
              "comparison at the deployment temperature is the judge's, above."]  # fmt: skip
    if report["versions_after_rollout"]:
        lines += ["", f"Versions the robot ran after the rollout call, episode by episode: "
                  f"{', '.join(report['versions_after_rollout'])}"]  # fmt: skip
    lines += ["", "![before and after](report.png)", "", "## The cycle", ""]
    lines += [f"- {k}: {v:.4g}" for k, v in sorted(report["cycle_metrics"].items())]
    path.write_text("\n".join(lines) + "\n")


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
