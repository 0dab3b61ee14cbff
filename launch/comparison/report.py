"""Did pretraining help? Fine-tuning runs → ``results.json``, ``report.md`` and PNG plots.

A run is a fine-tuning ``results.json`` plus ``variant`` ("scratch", "pretrained", ...), ``budget``
(labelled examples, 0 = all), ``label`` and ``baseline`` (its from-scratch twin: "scratch", or
"scratch:<arch>" when several architectures are compared), as `launch.compare` makes them.
Differences are variant − its twin with Welch's 95% t interval (SciPy's t distribution).
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re

import numpy as np
from matplotlib.figure import Figure  # Agg, without pyplot's global backend: headless, notebooks
from scipy import stats

BASELINE = "scratch"
SPLITS = ("test", "dev")
LEVEL = 0.95


def t_cdf(t: float, df: float) -> float:
    """P(T ≤ t) for Student's t with ``df`` > 0 (real) degrees of freedom."""
    return float(stats.t.cdf(t, df))


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom.

    Raises:
      ValueError: p outside (0, 1) or df ≤ 0 (SciPy would return NaN).
    """
    if not (0.0 < p < 1.0 and df > 0):
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    return float(stats.t.ppf(p, df))


def describe(values: list[float]) -> dict:
    """n, mean, sample std (ddof=1; 0 for one value) and the values themselves."""
    n = len(values)
    mean = math.fsum(values) / n if n else math.nan
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return {"n": n, "mean": mean, "std": math.sqrt(var), "values": [float(v) for v in values]}


def compare(values: list[float], baseline: list[float], level: float = LEVEL) -> dict:
    """mean(values) − mean(baseline), with Welch's t interval and a 2-pooled-std test.

    Returns:
      ``diff``; ``ci`` [low, high] (None unless n ≥ 2 on both sides) and its Welch–Satterthwaite
      ``df``; ``pooled_std`` sqrt((s1² + s2²) / 2); ``beats_by_2std``: diff > 2 pooled std, n ≥ 2.
    """
    a, b = describe(values), describe(baseline)
    diff = a["mean"] - b["mean"]
    pooled = math.sqrt((a["std"] ** 2 + b["std"] ** 2) / 2.0)
    both = a["n"] >= 2 and b["n"] >= 2
    out = {"diff": diff, "ci": None, "df": None, "pooled_std": pooled,
           "beats_by_2std": bool(both and diff > 2.0 * pooled)}
    va, vb = a["std"] ** 2 / a["n"], b["std"] ** 2 / b["n"]
    if both:  # all seeds equal on both sides: no spread, so a point interval on n1 + n2 - 2 df
        df = ((va + vb) ** 2 / (va ** 2 / (a["n"] - 1) + vb ** 2 / (b["n"] - 1)) if va + vb
              else float(a["n"] + b["n"] - 2))
        half = t_quantile(0.5 + level / 2.0, df) * math.sqrt(va + vb)
        out.update(ci=[diff - half, diff + half], df=df)
    return out


def metrics_of(split: dict | None) -> dict[str, float]:
    """A split's finite numeric metrics; counts (``examples``, SQuAD's ``*total``) are not."""
    return {k: float(v) for k, v in (split or {}).items()
            if isinstance(v, numbers.Real) and not isinstance(v, bool) and k != "examples"
            and not k.endswith("total") and math.isfinite(v)}


def _grouped(runs: list[dict]) -> dict[tuple, list[dict]]:
    """(task, budget, variant) → runs by seed; tasks as first seen, budgets up, scratch first."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        variant = r.get("variant") or ("pretrained" if r.get("init_from") else BASELINE)
        groups.setdefault((r["task"], int(r.get("budget") or 0), variant), []).append(r)
    tasks = list(dict.fromkeys(k[0] for k in groups))
    variants = list(dict.fromkeys([BASELINE] + sorted((k[2] for k in groups),
                                                      key=lambda v: not is_baseline(v))))
    order = lambda k: (tasks.index(k[0]), k[1] or math.inf, variants.index(k[2]))  # 0 = all
    return {k: sorted(groups[k], key=lambda r: r.get("seed") or 0)
            for k in sorted(groups, key=order)}


def _describe_group(key: tuple, runs: list[dict]) -> dict:
    main = runs[0].get("main_metric") or next(iter(metrics_of(runs[0].get("test"))), None)
    metrics = {}
    for split in SPLITS:
        values: dict[str, list[float]] = {main: []} if main else {}  # the main metric first
        for run in runs:
            for name, v in metrics_of(run.get(split)).items():
                values.setdefault(name, []).append(v)
        metrics[split] = {name: describe(vs) for name, vs in values.items() if vs}
    return {"task": key[0], "budget": key[1], "variant": key[2], "main_metric": main,
            "baseline": runs[0].get("baseline") or BASELINE,
            "train_examples": max(int(r.get("train_examples") or 0) for r in runs),
            "seeds": [r.get("seed") for r in runs], "metrics": metrics}


def summarize(runs: list[dict]) -> dict:
    """Per (task, budget, variant) statistics and every variant-vs-scratch comparison.

    Args:
      runs: fine-tuning results, each with ``task``, ``main_metric``, ``seed``, ``dev``, ``test``,
        ``curve``, ``variant`` and ``budget`` (see the module docstring).

    Returns:
      A JSON-serialisable dict: ``groups``, one per (task, budget, variant), with
      ``metrics[split][metric]`` = {n, mean, std, values}; ``comparisons``, one per (task, budget,
      non-scratch variant, split, metric): `compare`'s fields, ``main``, both means and counts.
    """
    groups = [_describe_group(k, rs) for k, rs in _grouped(runs).items()]
    index = {(g["task"], g["budget"], g["variant"]): g for g in groups}
    comparisons = []
    for g in groups:
        base = index.get((g["task"], g["budget"], g["baseline"]))
        for split in SPLITS if base and not is_baseline(g["variant"]) else ():
            for name, stat in g["metrics"][split].items():
                if (ref := base["metrics"][split].get(name)) is None:
                    continue
                comparisons.append({
                    "task": g["task"], "budget": g["budget"], "variant": g["variant"],
                    "split": split, "metric": name, "main": name == g["main_metric"],
                    "baseline": g["baseline"],
                    "n": stat["n"], "n_baseline": ref["n"], "mean": stat["mean"],
                    "mean_baseline": ref["mean"], **compare(stat["values"], ref["values"])})
    return {"baseline": BASELINE, "level": LEVEL, "groups": groups, "comparisons": comparisons}


def is_baseline(variant: str) -> bool:
    """Whether ``variant`` is a from-scratch twin (``scratch``, ``scratch:<arch>``)."""
    return variant == BASELINE or variant.startswith(BASELINE + ":")


def _num(v: float | None, sign: bool = False, like: float = 0.0) -> str:
    ok = v is not None and math.isfinite(v)  # decimals by scale: accuracy 0.8123, SQuAD 81.23
    return f"{v:{'+' if sign else ''}.{4 if max(abs(v), abs(like)) < 10 else 2}f}" if ok else "—"


def _pm(stat: dict | None) -> str:
    m = stat and stat["mean"]
    return f"{_num(m)} ± {_num(stat['std'], like=m)} ({stat['n']})" if stat else "—"


def _delta(c: dict | None) -> str:
    like = c and c["mean_baseline"]
    ci = c and ("n/a, n=1" if c["ci"] is None else ", ".join(_num(v, True, like) for v in c["ci"]))
    return f"{_num(c['diff'], True, like)} [{ci}]" if c else ""


def _labels(group: dict) -> str:
    return str(group["budget"]) if group["budget"] else f"all ({group['train_examples']})"


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(x).replace("|", "\\|") for x in r) + " |" for r in rows]


def _verdict(c: dict) -> str:
    if c["ci"] is None:
        return "one seed on a side, so no interval: run more seeds before trusting it"
    if c["ci"][0] > 0:
        return f"helps: the interval excludes 0, and Δ is {('less', 'more')[c['beats_by_2std']]}" \
            " than 2 pooled seed std"
    return "hurts: the interval lies below 0" if c["ci"][1] < 0 else "unclear: the CI spans 0"


def _context_md(context: dict | None) -> list[str]:
    items = {k: v if isinstance(v, str) else json.dumps(v, default=str)
             for k, v in (context or {}).items()}  # each on one line: a list item is one line
    return ["## Context", ""] + [f"- **{k}**: `{' '.join(v.splitlines())}`"
                                 for k, v in items.items()] + [""] if items else []


def _headline_md(summary: dict, index: dict) -> list[str]:
    rows, notes = [], []
    for c in [c for c in summary["comparisons"] if c["split"] == "test" and c["main"]]:
        g, m = index[c["task"], c["budget"], c["variant"]], c["metric"]
        base = index[c["task"], c["budget"], c.get("baseline", BASELINE)]
        rows.append([c["task"], _labels(g), m, _pm(base["metrics"]["test"][m]), c["variant"],
                     _pm(g["metrics"]["test"][m]), _delta(c), ("no", "yes")[c["beats_by_2std"]]])
        notes.append(f"- **{c['task']}, {_labels(g)} labels, {c['variant']}**: "
                     f"{_num(c['diff'], True)} {m} over scratch — {_verdict(c)}.")
    if not rows:
        return ["No variant has a scratch baseline on the same task and budget.", ""]
    return _table(["task", "labels", "metric", "scratch mean ± std (n)", "init",
                   "init mean ± std (n)", "Δ [95% CI]", "> 2 std?"], rows) + [""] + notes + [""]


def _full_md(summary: dict) -> list[str]:
    comps = {(c["task"], c["budget"], c["variant"], c["split"], c["metric"]): c
             for c in summary["comparisons"]}
    rows = [[g["task"], _labels(g), g["variant"], split, m, _pm(stat),
             _delta(comps.get((g["task"], g["budget"], g["variant"], split, m)))]
            for g in summary["groups"] for split in SPLITS
            for m, stat in g["metrics"][split].items()]
    return _table(["task", "labels", "init", "split", "metric", "mean ± std (n)",
                   "Δ vs scratch [95% CI]"], rows) + [""]


def _seeds_md(runs: list[dict]) -> list[str]:
    rows = []
    for (task, budget, variant), group in _grouped(runs).items():
        for r in group:
            main, test = r.get("main_metric"), metrics_of(r.get("test"))
            rows.append([task, budget or f"all ({r.get('train_examples')})", variant,
                         r.get("seed"), main, _num(test.get(main)),
                         _num(metrics_of(r.get("dev")).get(main)),
                         f"{r.get('best_step')}/{r.get('steps')}", r.get("train_seconds"),
                         ", ".join(f"{k}={_num(v)}" for k, v in test.items() if k != main),
                         r.get("label") or ""])
    return _table(["task", "labels", "init", "seed", "metric", "test", "dev (best)",
                   "best/last step", "train s", "other test metrics", "label"], rows) + [""]


def _efficiency_md(summary: dict) -> list[str]:
    lines = []
    for task, groups in _by_task(summary).items():
        budgets = {g["budget"]: g for g in groups}  # ascending, "all" last
        variants, main = list(dict.fromkeys(g["variant"] for g in groups)), groups[0]["main_metric"]
        test = {(g["budget"], g["variant"]): g["metrics"]["test"].get(main) for g in groups}
        rows = [[_labels(g)] + [_pm(test.get((b, v))) for v in variants]
                for b, g in budgets.items()]
        top = list(budgets.values())[-1]
        if goal := test.get((top["budget"], BASELINE)):  # how few labels match it, per variant
            rows.append([f"**fewest labels ≥ scratch at {_labels(top)}**"] + [next(
                (_labels(g) for b, g in budgets.items()
                 if (test.get((b, v)) or {}).get("mean", -math.inf) >= goal["mean"]), "none tried")
                for v in variants])
        if len(budgets) > 1:
            lines += [f"### {task} (test {main})", ""] + _table(["labels"] + variants, rows) + [""]
    return ["## Sample efficiency", ""] + lines if lines else []


def _calibration_md(summary: dict) -> list[str]:
    """Test ECE beside accuracy per classification task, labels and variant."""
    rows = [[g["task"], _labels(g), g["variant"], _pm(g["metrics"]["test"].get(g["main_metric"])),
             _pm(g["metrics"]["test"]["ece"])]
            for g in summary["groups"] if "ece" in g["metrics"]["test"]]
    if not rows:
        return []
    return ["## Calibration", "",
            "Expected calibration error of the test predictions (15 equal-width bins of top-label "
            "confidence; 0 = calibrated; lower is better), mean ± std over seeds. "
            "`launch.evaluate --workdir=RUN` draws a run's reliability diagram.", ""] + _table(
        ["task", "labels", "init", "main metric", "ECE"], rows) + [""]


def render_markdown(title: str, runs: list[dict], summary: dict, context: dict | None,
                    plots: list[str], extra_md: list[str] | None = None) -> str:
    """The report: context, headline, sample efficiency, plots, then every metric and run."""
    index = {(g["task"], g["budget"], g["variant"]): g for g in summary["groups"]}
    lines = [f"# {title}", ""] + _context_md(context) + (extra_md or []) + [
        "## Did pretraining help?", "",
        "Test split at each run's best dev checkpoint, each task's main metric; mean ± sample std "
        "over seeds (n). Δ = init − scratch with Welch's 95% t interval; \"> 2 std?\": is Δ more "
        "than twice the pooled seed std sqrt((s₁² + s₂²)/2), with ≥ 2 seeds a side.", ""]
    lines += _headline_md(summary, index) + _efficiency_md(summary) + _calibration_md(summary)
    lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""] if plots else []
    lines += ["## All metrics", ""] + _full_md(summary) + ["## Every run", ""] + _seeds_md(runs)
    return "\n".join(lines)


def _by_task(summary: dict) -> dict[str, list[dict]]:
    tasks = dict.fromkeys(g["task"] for g in summary["groups"])
    return {t: [g for g in summary["groups"] if g["task"] == t] for t in tasks}


def safe_name(text: str) -> str:
    """A filename fragment: "glue/sst2" → "glue_sst2"."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._") or "task"


def _save(fig, ax, out_dir: str, name: str, **labels) -> str:
    ax.set(**labels)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, name))
    return name


def _plot_curves(ax, runs: list[dict], metric: str, color: str, label: str) -> None:
    """Mean ± std band over seeds; seeds evaluated at different steps are drawn one by one."""
    curves = [np.array([(p["step"], p[metric]) for p in r.get("curve") or [] if metric in p],
                       dtype=float).reshape(-1, 2) for r in runs]
    curves = [c[np.argsort(c[:, 0])] for c in curves if len(c)]
    same = all(np.array_equal(c[:, 0], curves[0][:, 0]) for c in curves)
    for i, c in enumerate([] if same else curves):  # a mean over other steps would invent points
        ax.plot(*c.T, color=color, lw=0.8, alpha=0.6, label=None if i else f"{label}, per seed")
    if not (curves and same):
        return
    steps, ys = curves[0][:, 0], np.stack([c[:, 1] for c in curves])
    mean, std = ys.mean(0), ys.std(0, ddof=1) if len(ys) > 1 else np.zeros(len(steps))
    ax.plot(steps, mean, color=color, marker=".", label=label)
    ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.2)


def _budgets_plot(out_dir: str, task: str, groups: list[dict]) -> str:
    fig = Figure(figsize=(6, 3.8), dpi=100)
    ax, main, ticks = fig.add_subplot(), groups[0]["main_metric"], {}
    for i, variant in enumerate(dict.fromkeys(g["variant"] for g in groups)):
        pts = [(g["budget"] or g["train_examples"], g["metrics"]["test"][main], _labels(g))
               for g in groups if g["variant"] == variant and main in g["metrics"]["test"]]
        ticks.update({x: lab for x, _, lab in pts})
        ax.errorbar([p[0] for p in pts], [p[1]["mean"] for p in pts], capsize=3, marker="o",
                    yerr=[p[1]["std"] for p in pts], color=f"C{i}", label=variant)
    ax.set_xscale("log")
    ax.set_xticks(list(ticks), list(ticks.values()), fontsize=8)
    ax.minorticks_off()
    return _save(fig, ax, out_dir, f"budgets_{safe_name(task)}.png", title=task,
                 xlabel="labelled training examples (log)", ylabel=f"test {main} (± std)")


def _summary_plot(out_dir: str, comps: list[dict], index: dict) -> str:
    tasks = list(dict.fromkeys(c["task"] for c in comps))  # a panel each: metric scales differ
    fig = Figure(figsize=(7, 0.9 * len(tasks) + 0.35 * len(comps)), dpi=100)
    axes = fig.subplots(len(tasks), 1, squeeze=False, height_ratios=[
        1 + sum(c["task"] == t for c in comps) for t in tasks])[:, 0]
    for ax, task in zip(axes, tasks, strict=True):
        rows = [c for c in comps if c["task"] == task][::-1]
        for y, c in enumerate(rows):
            err = c["ci"] and [[c["diff"] - c["ci"][0]], [c["ci"][1] - c["diff"]]]
            ax.errorbar(c["diff"], y, xerr=err, fmt="o", capsize=3, mfc=None if err else "none",
                        color="C2" if c["beats_by_2std"] else "C0")
        ax.set_yticks(range(len(rows)), [f"{_labels(index[task, c['budget'], c['variant']])} · "
                                         f"{c['variant']}" for c in rows], fontsize=8)
        ax.axvline(0.0, color="k", lw=0.8)
        ax.set(title=f"{task}: Δ test {rows[0]['metric']} vs scratch", ylim=(-0.7, len(rows) - 0.3))
        ax.grid(alpha=0.3)
    return _save(fig, axes[-1], out_dir, "summary.png",
                 xlabel="95% Welch CI; green: Δ > 2 pooled seed std; hollow: one seed, no CI")


def write_plots(out_dir: str, runs: list[dict], summary: dict) -> list[str]:
    """The Δ summary, learning curves and label-budget curves; returns the PNG file names."""
    index = {(g["task"], g["budget"], g["variant"]): g for g in summary["groups"]}
    by_key = _grouped(runs)
    heads = [c for c in summary["comparisons"] if c["split"] == "test" and c["main"]]
    names = [_summary_plot(out_dir, heads, index)] if heads else []
    for task, groups in _by_task(summary).items():
        budgets = list(dict.fromkeys(g["budget"] for g in groups))
        for b in budgets:
            fig = Figure(figsize=(6, 3.8), dpi=100)
            ax = fig.add_subplot()
            by_variant = {k[2]: rs for k, rs in by_key.items() if k[:2] == (task, b)}
            main, first = groups[0]["main_metric"], next(iter(by_variant))
            for i, (variant, rs) in enumerate(by_variant.items()):
                _plot_curves(ax, rs, main, f"C{i}", f"{variant} (n={len(rs)})")
            suffix = "" if len(budgets) == 1 else f"_{b or 'all'}"
            names.append(_save(fig, ax, out_dir, f"curves_{safe_name(task)}{suffix}.png",
                               xlabel="training step", ylabel=f"dev {main} (mean ± std)",
                               title=f"{task}, {_labels(index[task, b, first])} labels"))
        if len(budgets) >= 2:
            names.append(_budgets_plot(out_dir, task, groups))
    return names


def write_report(out_dir: str, runs: list[dict], *, title: str, context: dict | None = None,
                 extra_md: list[str] | None = None) -> dict:
    """Writes ``results.json``, ``report.md`` and PNG plots to ``out_dir``; returns `summarize`'s.

    Args:
      out_dir: created if missing. runs: as for `summarize`. title: the report's heading.
      context: free key → value facts shown first (pretraining command, time, hardware, ...).
      extra_md: Markdown lines put before the headline table (the ranking of several inits).
    """
    os.makedirs(out_dir, exist_ok=True)
    summary = summarize(runs)
    # numpy scalars and arrays become numbers and lists; anything else unknown, its string.
    plain = lambda v: v.tolist() if isinstance(v, (np.generic, np.ndarray)) else str(v)
    payload = {"runs": runs, "summary": summary, "context": context}
    plots = write_plots(out_dir, runs, summary)
    for name, text in [("results.json", json.dumps(payload, indent=1, default=plain)),
                       ("report.md", render_markdown(title, runs, summary, context, plots,
                                                     extra_md))]:
        path = os.path.join(out_dir, name)
        with open(path + ".tmp", "w") as f:  # a reader never sees half a file
            f.write(text)
        os.replace(path + ".tmp", path)
    return summary
