"""The ranking of several initialisations: the BERT paper's objective ablation (its Table 5) in
miniature, and whether a cheap measure predicts the fine-tuned one.

* ``table``: one row per initialisation (and per from-scratch twin), one column per task: the
  test main metric's mean ± sample std over seeds, Δ vs the row's own twin with Welch's 95%
  t interval across seeds (``report.compare``), the best mean per column marked; with each
  initialisation's encoder parameters and pretraining FLOPs where known.
* ``correlations``: Spearman's ρ (``scipy.stats.spearmanr``) between each intrinsic measure of
  the initialisations (held-out loss, probe and zero-shot accuracy: ``inits.intrinsic``) and
  their mean fine-tuned test metric, per task, with a 95% percentile bootstrap interval over the
  initialisations (resampled with replacement, 2,000 draws, seed 0; draws with a constant side
  are dropped). With fewer than 3 initialisations there is no ρ.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
from scipy import stats

from launch.comparison import report

BOOTSTRAP = 2000


def _main_stats(summary: dict) -> dict[tuple[str, str], dict]:
    """(variant, task) → the test main metric's {n, mean, std, values} at the first budget."""
    out = {}
    for g in summary["groups"]:
        stat = g["metrics"]["test"].get(g["main_metric"])
        if stat and (g["variant"], g["task"]) not in out:
            out[g["variant"], g["task"]] = {**stat, "metric": g["main_metric"]}
    return out


def table(summary: dict, described: dict[str, dict], twins: dict[str, str]) -> dict:
    """{"tasks", "rows": [{name, baseline, parameters, flops, tokens, cells: {task: {mean,
    std, n, diff, ci, best}}}]}: initialisations in order, then their twins."""
    stats_ = _main_stats(summary)
    comps = {(c["variant"], c["task"]): c for c in summary["comparisons"]
             if c["split"] == "test" and c["main"]}
    tasks = list(dict.fromkeys(g["task"] for g in summary["groups"]))
    names = list(described) + list(dict.fromkeys(twins.values()))
    rows = []
    for name in names:
        info = described.get(name, {})
        cells = {}
        for task in tasks:
            stat = stats_.get((name, task))
            if stat is None:
                continue
            c = comps.get((name, task))
            cells[task] = {"mean": stat["mean"], "std": stat["std"], "n": stat["n"],
                           "metric": stat["metric"], "diff": c and c["diff"],
                           "ci": c and c["ci"], "best": False}
        rows.append({"name": name, "baseline": twins.get(name), "arch": info.get("arch"),
                     "objectives": info.get("objectives", "none (random init)"),
                     "parameters": info.get("parameters"), "flops": info.get("flops"),
                     "tokens": info.get("tokens"), "cells": cells})
    for task in tasks:
        means = [r["cells"][task]["mean"] for r in rows if task in r["cells"]]
        for r in rows:
            if task in r["cells"] and means and r["cells"][task]["mean"] == max(means):
                r["cells"][task]["best"] = True
    return {"tasks": tasks, "rows": rows}


def _sci(v) -> str:
    return "—" if v is None else f"{v:.2e}" if v >= 1e5 else f"{v:g}"


def _cell(cell: dict | None) -> str:
    if cell is None:
        return "not run"
    m = report._num(cell["mean"])
    text = f"{m} ± {report._num(cell['std'], like=cell['mean'])}"
    if cell["diff"] is not None:
        ci = "n/a" if cell["ci"] is None else ", ".join(
            report._num(v, True, cell["mean"]) for v in cell["ci"])
        text += f" (Δ {report._num(cell['diff'], True, cell['mean'])} [{ci}])"
    return f"**{text}**" if cell["best"] else text


def table_md(ranked: dict) -> list[str]:
    header = ["initialisation", "objectives", "params", "pretraining FLOPs", "tokens",
              *ranked["tasks"]]
    rows = [[r["name"], r["objectives"], _sci(r["parameters"]), _sci(r["flops"]),
             _sci(r["tokens"]), *[_cell(r["cells"].get(t)) for t in ranked["tasks"]]]
            for r in ranked["rows"]]
    return report._table(header, rows) + [""]


def per_task_md(ranked: dict) -> list[str]:
    """Per task: the initialisations by mean, best first."""
    lines = []
    for task in ranked["tasks"]:
        order = sorted((r for r in ranked["rows"] if task in r["cells"]),
                       key=lambda r: -r["cells"][task]["mean"])
        ranks = ", ".join(f"{i + 1}. {r['name']} {report._num(r['cells'][task]['mean'])}"
                          for i, r in enumerate(order))
        lines.append(f"- **{task}**: {ranks}")
    return lines + [""]


def spearman(x: list[float], y: list[float], seed: int = 0) -> dict:
    """ρ with its 95% percentile bootstrap interval over the pairs (module docstring)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"n": n, "rho": None, "ci": None}
    rho = float(stats.spearmanr(x, y).statistic)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(BOOTSTRAP):
        i = rng.integers(0, n, n)
        if np.ptp(x[i]) and np.ptp(y[i]):
            draws.append(stats.spearmanr(x[i], y[i]).statistic)
    draws = [d for d in draws if math.isfinite(d)]
    ci = [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))] if draws else None
    return {"n": n, "rho": rho, "ci": ci}


def _measure_task(measure: str) -> str | None:
    """The task a measure is about (``probe/<task>/…``, ``zeroshot/<task>/…``), or None."""
    parts = measure.split("/")
    return parts[1] if len(parts) > 2 and parts[0] in ("probe", "zeroshot") else None


def correlations(summary: dict, intrinsic: dict[str, dict[str, float]]) -> list[dict]:
    """Per (intrinsic measure, task): Spearman's ρ across the initialisations that have both; a
    task's probe or zero-shot score is set against that task's fine-tuned metric only."""
    stats_ = _main_stats(summary)
    tasks = list(dict.fromkeys(g["task"] for g in summary["groups"]))
    measures = sorted({m for v in intrinsic.values() for m in v})
    out = []
    for measure in measures:
        own = _measure_task(measure)
        for task in [t for t in tasks if own in (None, t)]:
            names = [k for k, v in intrinsic.items() if measure in v and (k, task) in stats_]
            x = [intrinsic[k][measure] for k in names]
            y = [stats_[k, task]["mean"] for k in names]
            out.append({"measure": measure, "task": task, "initialisations": names,
                        **spearman(x, y)})
    return out


def correlations_md(corrs: list[dict]) -> list[str]:
    rows = [[c["measure"], c["task"], c["n"], f"{c['rho']:+.2f}",
             "—" if c["ci"] is None else f"[{c['ci'][0]:+.2f}, {c['ci'][1]:+.2f}]"]
            for c in corrs if c["rho"] is not None]
    few = sorted({c["measure"] for c in corrs if c["rho"] is None}
                 - {c["measure"] for c in corrs if c["rho"] is not None})
    return (["## Does a cheap measure predict the fine-tuned one?", "",
             "Spearman's ρ across initialisations between each intrinsic measure and the mean "
             "fine-tuned test metric; 95% percentile bootstrap over initialisations (2,000 "
             "draws). Held-out losses are lower-is-better, so predicting means ρ < 0 there; each "
             "objective's loss is correlated only across the initialisations trained on it. "
             "probe: the ridge probe's test accuracy at the layer best on dev (scratch twins "
             "probed at their random initialisation count as points too); a task's probe or "
             "zero-shot score is set against that task only. With few points the bootstrap "
             "interval is crude (n = 4 can give [-1, -1]).", ""]
            + (report._table(["measure", "task", "n", "ρ", "95% bootstrap CI"], rows)
               if rows else ["No measure has 3 points."]) + [""]
            + ([f"Too few points (or no spread) for a ρ: {', '.join(few)}.", ""] if few else []))


def sections(summary: dict, described: dict, twins: dict, intrinsic: dict,
             skipped: list[str]) -> list[str]:
    """The report's ranking sections (before report.py's headline table)."""
    ranked = table(summary, described, twins)
    lines = ["## Initialisations by task", "",
             "Test main metric, mean ± sample std over seeds; Δ vs the row's own from-scratch "
             "twin (the same architecture) with Welch's 95% t interval across seeds; the best "
             "mean of each column in bold. FLOPs: launch/train/flops.py's matmul count of the "
             "pretraining steps (— where unknown: XLNet, converted checkpoints).", ""]
    lines += table_md(ranked) + per_task_md(ranked)
    if skipped:
        lines += [f"Not run (no fine-tuning model for the task's kind): {', '.join(skipped)}.",
                  ""]
    return lines + correlations_md(correlations(summary, intrinsic))


def headline(ranked: dict) -> list[str]:
    out = ["== ranking (test main metric, mean over seeds; * best)"]
    for task in ranked["tasks"]:
        cells = [(r["name"], r["cells"][task]) for r in ranked["rows"] if task in r["cells"]]
        cells.sort(key=lambda nc: -nc[1]["mean"])
        out.append(f"{task}: " + ", ".join(f"{n}{'*' if c['best'] else ''} {c['mean']:.4f}"
                                           for n, c in cells))
    return out


def zeroshot_of(out_dir: str, name: str) -> dict[str, float]:
    """``zeroshot/<task>/accuracy`` figures the comparison measured for ``name`` (GPT only)."""
    path = os.path.join(out_dir, "zeroshot", f"{name}.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return {k: float(v) for k, v in json.load(f).items()
                if k.endswith("accuracy") and not k.endswith("majority_accuracy")}
