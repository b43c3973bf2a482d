"""The paper bench's report, from its JSON lines alone (``results.jsonl``): tables, paired tests and plots.

Every success figure is a policy's outcome on each of the same seeded evaluation scenes (``outcomes``: one 0/1 per
scene). A trained row is a matrix [seeds, scenes]; its mean has a 95% interval from a seeds × scenes bootstrap
(``data_store.stats.hierarchical_ci``, widened to the pooled Wilson interval where that is wider), and a paired
sign-flip test on the per-scene differences (the row averaged over its seeds, minus the reference) says whether a
difference is real. The references: the Base at its best
temperature (chosen on validation scenes), and GRPO in the simulator at the same real budget P.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from data_store.stats import hierarchical_ci, sign_flip, wilson

LABELS = {
    "base_deployed": "Base, as deployed",
    "base_best": "Base, best temperature",
    "grpo_sim": "GRPO in simulator",
    "wmpo": "WMPO",
    "wmpo_kir": "WMPO + KIR",
    "wmpo_kir_coevo": "WMPO + KIR + co-evolution",
}
TRAINED = ("wmpo", "wmpo_kir", "wmpo_kir_coevo")


@dataclass(frozen=True)
class Cell:
    """A row's success on one task (or overall): mean over seeds and scenes, 95% interval, and the per-scene mean
    over seeds (for paired tests)."""

    mean: float
    low: float
    high: float
    per_scene: np.ndarray  # float [scenes]
    seeds: int
    note: str = ""
    by_seed: np.ndarray | None = None  # float [seeds, scenes]: the outcomes the interval is bootstrapped from

    def text(self, of_seeds: int = 0) -> str:
        """ "63.0 [53, 72]", with its note, and "(k/n seeds)" when ``of_seeds`` is more than the seeds it has."""
        more = f" ({self.seeds}/{of_seeds} seeds)" if self.seeds < of_seeds else ""
        return (
            f"{100 * self.mean:.1f} [{100 * self.low:.0f}, {100 * self.high:.0f}]"
            + (f" {self.note}" if self.note else "")
            + more
        )


def _bits(line: dict[str, Any]) -> np.ndarray:
    return np.array([c == "1" for c in line["outcomes"]], dtype=np.float64)


class Results:
    """Outcome lines indexed by (task, row, seed, temperature, scenes)."""

    def __init__(self, lines: list[dict[str, Any]]) -> None:
        self.lines = lines
        self.o: dict[tuple[str, str, int | None, float, str], np.ndarray] = {}
        for ln in lines:
            if ln.get("figure") == "success_rate" and "outcomes" in ln:
                key = (ln["task"], ln["row"], ln.get("seed"), float(ln["temperature"]), ln["scenes"])
                self.o[key] = _bits(ln)

    def matrix(
        self, task: str, row: str, temperature: float, seeds: tuple[int, ...], partial: bool = False
    ) -> np.ndarray | None:
        """float [seeds, scenes] of a trained row on the evaluation scenes; None if any seed is missing (``partial``:
        the seeds there are, None if none)."""
        rows = [self.o.get((task, row, s, float(temperature), "eval")) for s in seeds]
        if partial:
            rows = [r for r in rows if r is not None]
        if not rows or any(r is None for r in rows):
            return None
        return np.stack([r for r in rows if r is not None])

    def seeds_done(self, task: str, row: str, temperature: float, seeds: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(s for s in seeds if (task, row, s, float(temperature), "eval") in self.o)

    def base(self, task: str, temperature: float, scenes: str = "eval") -> np.ndarray | None:
        return self.o.get((task, "base", None, float(temperature), scenes))

    def best_temperature(self, task: str, temperatures: tuple[float, ...], deploy: float) -> float | None:
        """The base's best temperature on the validation scenes (ties: the deployment temperature, then the
        lowest)."""
        scored = []
        for t in temperatures:
            v = self.base(task, t, "validation")
            if v is not None:
                scored.append((float(v.mean()), t == deploy, -t, t))
        return max(scored)[3] if scored else None

    def promoted(self, task: str, row: str, seed: int) -> bool | None:
        for ln in self.lines:
            if ln.get("name") == f"paper/{task}/{row}/seed{seed}/judge":
                return bool(ln["value"])
        return None


def cell(m: np.ndarray | None, note: str = "") -> Cell | None:
    """The interval is the seeds × scenes bootstrap's, widened to the Wilson interval of the pooled outcomes where
    that is wider: the bootstrap alone says [0, 0] for a row that failed every scene."""
    if m is None:
        return None
    m = np.atleast_2d(m)
    mean, lo, hi = hierarchical_ci(m)
    w = wilson(int(m.sum()), int(m.size))
    return Cell(mean, min(lo, w.low), max(hi, w.high), m.mean(axis=0), m.shape[0], note, m)


def overall(cells: list[Cell | None]) -> Cell | None:
    """Pooled over tasks: the scenes of every task side by side. With the same seeds on every task, the interval is
    the seeds × scenes bootstrap of all of them (as a task's cell); otherwise a scene bootstrap of the per-scene
    means, which leaves out the seeds' spread."""
    if not cells or any(c is None for c in cells):
        return None
    present = [c for c in cells if c is not None]
    per = np.concatenate([c.per_scene for c in present])
    seeds = min(c.seeds for c in present)
    matrices = [c.by_seed for c in present]
    if all(m is not None and m.shape[0] == seeds for m in matrices):
        both = np.concatenate([m for m in matrices if m is not None], axis=1)
        mean, lo, hi = hierarchical_ci(both)
    else:
        mean, lo, hi = hierarchical_ci(per[None])
    w = wilson(round(float(per.sum()) * seeds), int(per.size * seeds))
    return Cell(mean, min(lo, w.low), max(hi, w.high), per, seeds)


def paired(a: Cell | None, b: Cell | None) -> str:
    """ "+12.0 (p 0.003)": a − b on the shared scenes, two-sided sign-flip test."""
    if a is None or b is None or a.per_scene.shape != b.per_scene.shape:
        return "–"
    d = a.per_scene - b.per_scene
    return f"{100 * d.mean():+.1f} (p {sign_flip(d):.3f})"


def summarize(lines: list[dict[str, Any]], cfg: Any, partial: bool = False) -> dict[str, Any]:
    """The tables as data: {"rows": {row: {task|overall: Cell}}, "best_t": {task: T}, ...}. ``partial``: a run still
    going: each cell over the seeds done so far (its ``seeds`` says how many)."""
    res = Results(lines)
    deploy, sampling = float(cfg.deploy_temperature), float(cfg.sampling_temperature)
    temps = tuple(sorted({*map(float, cfg.base_temperatures), sampling, deploy}))
    seeds = tuple(cfg.seeds)
    out: dict[str, Any] = {
        "deploy": deploy,
        "sampling": sampling,
        "best_t": {},
        "rows": {},
        "sampling_rows": {},
        "flywheel": {},
        "curve": {},
        "promoted": {},
    }
    for t_key, into in ((deploy, out["rows"]), (sampling, out["sampling_rows"])):
        rows: dict[str, dict[str, Cell | None]] = {k: {} for k in LABELS}
        for task in cfg.tasks:
            best = res.best_temperature(task, temps, deploy)
            out["best_t"][task] = best
            rows["base_deployed"][task] = cell(res.base(task, t_key))
            rows["base_best"][task] = cell(res.base(task, best), f"(T={best:g})") if best is not None else None
            rows["grpo_sim"][task] = cell(res.matrix(task, f"grpo_sim_P{cfg.budget}", t_key, seeds, partial))
            for row in TRAINED:
                rows[row][task] = cell(res.matrix(task, row, t_key, seeds, partial))
        for cells in rows.values():
            cells["overall"] = overall([cells.get(t) for t in cfg.tasks])
        into.update(rows)
    # the flywheel: what the robot runs after the cycle, per seed: the candidate where the judge promoted it
    for row in TRAINED:
        mats: list[np.ndarray] = []
        for task in cfg.tasks:
            done = res.seeds_done(task, row, deploy, seeds) if partial else seeds
            m, b = res.matrix(task, row, deploy, done), res.base(task, deploy)
            flags = [res.promoted(task, row, s) for s in done]
            if not done or m is None or b is None or any(f is None for f in flags):
                mats = []
                break
            mats.append(np.stack([m[i] if flags[i] else b for i in range(len(done))]))
            out["promoted"].setdefault(row, {})[task] = (sum(bool(f) for f in flags), len(done))
        if mats:
            per_task = {t: cell(mat) for t, mat in zip(cfg.tasks, mats, strict=True)}
            per_task["overall"] = overall(list(per_task.values()))
            out["flywheel"][row] = per_task
    # sample efficiency: overall success at the deployment temperature per real budget
    for budget in cfg.sim_budgets:
        out["curve"][budget] = overall(
            [cell(res.matrix(t, f"grpo_sim_P{budget}", deploy, seeds, partial)) for t in cfg.tasks]
        )
    return out


def matches_line(summary: dict[str, Any], budgets: tuple[int, ...], p: int) -> str:
    """The sample-efficiency sentence: "WMPO with 128 real episodes matches simulator GRPO with N"."""
    wmpo = summary["rows"]["wmpo"].get("overall")
    curve = {b: c for b, c in summary["curve"].items() if c is not None}
    if wmpo is None or not curve:
        return ""
    reached = [b for b in sorted(curve) if curve[b].mean >= wmpo.mean]
    if not reached:
        return (
            f"WMPO with {p} real episodes ({100 * wmpo.mean:.1f}%) beats simulator GRPO with every budget "
            f"measured, up to {max(curve)} ({100 * curve[max(curve)].mean:.1f}%)."
        )
    n = reached[0]
    if n == min(curve) and curve[n].mean > wmpo.high:  # already the smallest budget does better than WMPO's interval
        return (
            f"WMPO with {p} real episodes ({100 * wmpo.mean:.1f}%) falls short of simulator GRPO at every budget "
            f"measured, the smallest included: {n} ({100 * curve[n].mean:.1f}%)."
        )
    return (
        f"WMPO with {p} real episodes ({100 * wmpo.mean:.1f}%) matches simulator GRPO with {n} "
        f"({100 * curve[n].mean:.1f}%)" + (", the smallest budget measured" if n == min(curve) else "") + "."
    )


def write_report(lines: list[dict[str, Any]], cfg: Any, out: Path, partial: bool = False) -> Path:
    """report.md (tables, paired tests, the flywheel row, diagnostics, stage times), success.png and
    sample_efficiency.png. ``partial``: the report of a run still going (cells over the seeds done so far)."""
    out.mkdir(parents=True, exist_ok=True)
    s = summarize(lines, cfg, partial)
    cols = [*cfg.tasks, "overall"]
    md = _header(s, cfg, partial)
    md += _deployment_tables(s, cfg, cols)
    md += _sampling_table(s, cfg, cols)
    md += _flywheel_table(s, cfg, cols)
    md += _sample_efficiency(s, cfg)
    md += _diagnostics(lines)
    md += _stage_times(lines)
    (out / "report.md").write_text("\n".join(md) + "\n")
    _plots(s, cfg, out)
    return out / "report.md"


def _header(s: dict[str, Any], cfg: Any, partial: bool) -> list[str]:
    return [
        "# WMPO's table on the simulated arm, judged as the robot runs",
        "",
        *(
            ["**Partial**: the run is still going; a cell marked (k/n seeds) has k of its n seeds so far.", ""]
            if partial
            else []
        ),
        f"P = {cfg.budget} real episodes of the base; recipe `{cfg.recipe}`"
        + (f" with {cfg.recipe_overrides}" if cfg.recipe_overrides else "")
        + f"; seeds {list(cfg.seeds)}; {cfg.eval_episodes} seeded evaluation scenes per task, shared by every row. "
        f"Mean over seeds and scenes, 95% interval (seeds × scenes bootstrap). Base's best temperature chosen "
        f"on {cfg.validation_episodes} validation scenes among {sorted({*cfg.base_temperatures, s['sampling']})}.",
        "",
    ]


def _deployment_tables(s: dict[str, Any], cfg: Any, cols: list[str]) -> list[str]:
    """Each row's success at the deployment temperature, then the paired differences between rows."""
    md = [
        f"## Success at the deployment temperature T = {s['deploy']:g} (what the robot runs)",
        "",
        "| Method | real episodes | " + " | ".join(cols) + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    real = {
        "base_deployed": 0,
        "base_best": 0,
        "grpo_sim": cfg.budget,
        "wmpo": cfg.budget,
        "wmpo_kir": cfg.budget,
        "wmpo_kir_coevo": cfg.budget + cfg.coevo_extra,
    }
    n_seeds = len(cfg.seeds)
    for row, label in LABELS.items():
        cells = s["rows"][row]
        k = 0 if row.startswith("base") else n_seeds
        md.append(
            f"| {label} | {real[row]} | " + " | ".join(cells[c].text(k) if cells.get(c) else "–" for c in cols) + " |"
        )
    md += [
        "",
        "Paired differences on the shared scenes, points (two-sided sign-flip p):",
        "",
        "| Method | vs | " + " | ".join(cols) + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    for row in ("grpo_sim", *TRAINED):
        for ref in ("base_best", "base_deployed", "grpo_sim"):
            if ref == row:
                continue
            md.append(
                f"| {LABELS[row]} | {LABELS[ref]} | "
                + " | ".join(paired(s["rows"][row].get(c), s["rows"][ref].get(c)) for c in cols)
                + " |"
            )
    return md


def _sampling_table(s: dict[str, Any], cfg: Any, cols: list[str]) -> list[str]:
    md = [
        "",
        f"## At the sampling temperature T = {s['sampling']:g} (reported only)",
        "",
        "| Method | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for row in ("base_deployed", "grpo_sim", *TRAINED):
        cells = s["sampling_rows"][row]
        label = "Base" if row == "base_deployed" else LABELS[row]
        k = 0 if row.startswith("base") else len(cfg.seeds)
        md.append(f"| {label} | " + " | ".join(cells[c].text(k) if cells.get(c) else "–" for c in cols) + " |")
    return md


def _flywheel_table(s: dict[str, Any], cfg: Any, cols: list[str]) -> list[str]:
    md = [
        "",
        "## The flywheel: what the robot runs after one cycle",
        "",
        "Per seed, the candidate where the cycle's judge promoted it (on validation scenes, disjoint from these), "
        "else the base, at the deployment temperature. It must never be worse than the base as deployed.",
        "",
        "| Cycle | promoted (of seeds, per task) | " + " | ".join(cols) + " | vs Base as deployed (overall) |",
        "|---|---|" + "---|" * len(cols) + "---|",
    ]
    for row, cells in s["flywheel"].items():
        promoted = ", ".join(f"{t}: {k}/{n}" for t, (k, n) in s["promoted"].get(row, {}).items())
        md.append(
            f"| {LABELS[row]} | {promoted} | "
            + " | ".join(cells[c].text(len(cfg.seeds)) if cells.get(c) else "–" for c in cols)
            + f" | {paired(cells.get('overall'), s['rows']['base_deployed'].get('overall'))} |"
        )
    return md


def _sample_efficiency(s: dict[str, Any], cfg: Any) -> list[str]:
    md = [
        "",
        "## Sample efficiency",
        "",
        "| GRPO in simulator, real episodes | overall success at the deployment temperature |",
        "|---|---|",
    ]
    for budget, c in s["curve"].items():
        md.append(f"| {budget} | {c.text() if c else '–'} |")
    line = matches_line(s, tuple(cfg.sim_budgets), cfg.budget)
    if line:
        md += ["", f"**{line}**"]
    return [*md, "", "![success](success.png) ![sample efficiency](sample_efficiency.png)", ""]


def _diagnostics(lines: list[dict[str, Any]]) -> list[str]:
    md = ["## Diagnostics", "", "| name | figure | value |", "|---|---|---|"]
    for ln in lines:
        if ln.get("figure") not in ("success_rate", "wall_time", "promoted") and isinstance(
            ln.get("value"), int | float
        ):
            md.append(f"| {ln['name']} | {ln['figure']} | {ln['value']:.3f} |")
    md += ["", "### The cycle's judge, per row and seed", "", "| row | promoted | reason |", "|---|---|---|"]
    for ln in lines:
        if ln.get("figure") == "promoted":
            md.append(f"| {ln['name']} | {'yes' if ln['value'] else 'no'} | {ln.get('reason', '')} |")
    return [*md, ""]


def _stage_times(lines: list[dict[str, Any]]) -> list[str]:
    md = [
        "## Stage wall times and memory",
        "",
        "| stage | s | load (1 min) | process peak RSS (MiB) |",
        "|---|---|---|---|",
    ]
    for ln in lines:
        if ln.get("figure") == "wall_time":
            load = (ln.get("machine") or {}).get("load_1min")
            md.append(
                f"| {ln['name']} | {ln['value']:.1f} | {load if load is None else round(load, 2)} | "
                f"{ln.get('peak_rss_mib', '')} |"
            )
    return [*md, ""]


def _plots(s: dict[str, Any], cfg: Any, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [*cfg.tasks, "overall"]
    rows = list(LABELS)
    fig, ax = plt.subplots(figsize=(2 + 1.8 * len(cols), 3.8))
    width = 0.8 / len(rows)
    for k, row in enumerate(rows):
        xs, ys, lo, hi = [], [], [], []
        for j, c in enumerate(cols):
            ce = s["rows"][row].get(c)
            if ce is None:
                continue
            xs.append(j + (k - (len(rows) - 1) / 2) * width)
            ys.append(100 * ce.mean)
            lo.append(100 * (ce.mean - ce.low))
            hi.append(100 * (ce.high - ce.mean))
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=LABELS[row])
    ax.set_xticks(range(len(cols)), cols, rotation=15)
    ax.set_ylabel(f"success at T = {s['deploy']:g} (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, ncols=2)
    fig.tight_layout()
    fig.savefig(out / "success.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    curve = [(b, c) for b, c in s["curve"].items() if c is not None]
    if curve:
        b, c = zip(*curve, strict=True)
        ax.errorbar(
            b,
            [100 * x.mean for x in c],
            yerr=[[100 * (x.mean - x.low) for x in c], [100 * (x.high - x.mean) for x in c]],
            marker="o",
            capsize=3,
            label="GRPO in simulator",
        )
    markers = {"wmpo": "s", "wmpo_kir": "^", "wmpo_kir_coevo": "D"}
    for row in TRAINED:
        c = s["rows"][row].get("overall")
        if c is None:
            continue
        x = cfg.budget + (cfg.coevo_extra if row == "wmpo_kir_coevo" else 0)
        ax.errorbar(
            [x],
            [100 * c.mean],
            yerr=[[100 * (c.mean - c.low)], [100 * (c.high - c.mean)]],
            marker=markers[row],
            capsize=3,
            linestyle="none",
            label=LABELS[row],
        )
    base = s["rows"]["base_best"].get("overall")
    if base is not None:
        ax.axhline(100 * base.mean, color="grey", linestyle="--", linewidth=1, label="Base, best temperature")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("real episodes")
    ax.set_ylabel(f"overall success at T = {s['deploy']:g} (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7)
    ax.set_title("sample efficiency")
    fig.tight_layout()
    fig.savefig(out / "sample_efficiency.png", dpi=120)
    plt.close(fig)


def nan_to_none(x: float) -> float | None:
    return None if math.isnan(x) else x
