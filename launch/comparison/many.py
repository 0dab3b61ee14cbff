"""Model choice: fine-tune several initialisations and their from-scratch twins, rank them per task.

The initialisations are pretraining runs made here (``pretrain_runs``: name → pretraining config,
each under ``WORKDIR/pretrain/<name>``; the objectives ablation of launch/configs/compare.py) and
existing workdirs (``inits``: ``name=DIR,…``: pretraining runs of any family, ``launch.convert``
outputs). Each architecture gets one from-scratch twin (``scratch`` when all share one
architecture, else ``scratch:<arch>``, a counter added when two shapes share an arch name), so
every Δ compares the same network with and without its pretraining. Everything is checked before
the first pretraining step (``run.check_finetunable``); a pair pretrax cannot fine-tune (GPT has
no span-QA head) is left out of the plan and named in the report. Finished runs are reused, so an
interrupted comparison continues.
"""

from __future__ import annotations

import json
import os
import sys
import time

import jax
import ml_collections

from launch.comparison import inits as inits_lib
from launch.comparison import probes, ranking, report, zeroshot
from launch.comparison import run as single
from launch.pretraining import run as pretraining
from launch.train import lock, reporting
from launch.train import workdir as workdir_lib


def is_many(c) -> bool:
    """Whether ``c`` names initialisations (``inits`` or ``pretrain_runs``), not one pretraining."""
    return bool(c.get("inits") or c.get("pretrain_runs"))


def compare(c, out_dir: str, *, force_unlock: bool = False) -> dict:
    """`launch.compare`: this module's comparison for several initialisations, else
    ``run.compare``'s pretrained-vs-scratch one."""
    if not is_many(c):
        return single.compare(c, out_dir, force_unlock=force_unlock)
    with lock.acquire(out_dir, force=force_unlock):
        return _compare_many(c, out_dir, force_unlock)


def _planned_configs(c, out_dir: str) -> tuple[dict[str, dict], dict[str, str]]:
    """(name → pretraining config as data, name → workdir) of every initialisation, in order."""
    cfgs, dirs = {}, {}
    for name, pre in (c.get("pretrain_runs") or {}).items():
        cfgs[name] = pre.to_dict() if isinstance(pre, ml_collections.ConfigDict) else dict(pre)
        dirs[name] = os.path.join(out_dir, "pretrain", name)
    for name, path in inits_lib.parse(c.get("inits") or "").items():
        if name in dirs:
            raise ValueError(f"inits: {name!r} is also a pretrain_runs name; rename one")
        cfgs[name], dirs[name] = inits_lib.read_config(path), path
    return cfgs, dirs


def scratch_twins(cfgs: dict[str, dict]) -> dict[str, str]:
    """name → the name of its from-scratch twin: one per distinct architecture (the model
    section, the fields fine-tuning sets itself aside, and the tokenizer)."""
    from launch.finetuning import setup as finetune_setup  # noqa: PLC0415
    keys: dict[str, str] = {}
    out = {}
    for name, cfg in cfgs.items():
        model = {k: v for k, v in cfg["model"].items() if k not in finetune_setup.FINETUNE_FIELDS}
        key = json.dumps([model, cfg["data"]["tokenizer"]], sort_keys=True, default=str)
        if key not in keys:
            arch = cfg["model"]["arch"]
            same = sum(v.startswith(f"{inits_lib.SCRATCH}:{arch}") for v in keys.values())
            keys[key] = f"{inits_lib.SCRATCH}:{arch}" + (f"{same + 1}" if same else "")
        out[name] = keys[key]
    if len(set(out.values())) == 1:
        return dict.fromkeys(out, inits_lib.SCRATCH)
    return out


def plan(c, cfgs: dict[str, dict], twins: dict[str, str]) -> tuple[list[tuple], list[str]]:
    """Every fine-tuning run as (task, budget, variant, seed), twins first; and the
    (initialisation, task) pairs left out because pretrax cannot fine-tune them."""
    runs, skipped = [], []
    budgets = {t: b for t, _, b in (p.partition("=") for p in c.budgets.split(";") if "=" in p)}
    for task in single._names(c.tasks):
        variants = []
        for name, twin in twins.items():
            if not single.supports(cfgs[name]["model"]["arch"], task):
                skipped.append(f"{name} × {task}")
                continue
            variants += [v for v in (twin, name) if v not in variants]
        variants.sort(key=lambda v: not v.startswith(inits_lib.SCRATCH))
        for b in single._ints(budgets.get(task, str(c.get("train_examples") or 0))):
            runs += [(task, b, v, s) for s in range(c.seeds) for v in variants]
    return runs, skipped


def _pretrain_all(c, dirs: dict[str, str], force_unlock: bool) -> None:
    for name, pre in (c.get("pretrain_runs") or {}).items():
        if not os.path.exists(os.path.join(dirs[name], "results.json")):
            reporting.say(f"== pretraining {name} ({pre.model.arch}) → {dirs[name]}")
            pretraining.train_and_evaluate(pre, dirs[name], force_unlock=force_unlock)


def _zeroshot(c, out_dir: str, cfgs: dict[str, dict], dirs: dict[str, str]) -> None:
    """k-shot label-word accuracy of every GPT initialisation (``zeroshot_shots``), written to
    ``WORKDIR/zeroshot/<name>.json``: an intrinsic measure for the report's correlations."""
    shots = single._ints(c.get("zeroshot_shots") or "")
    for name, cfg in cfgs.items():
        if shots and cfg["model"]["arch"] == "gpt":
            reporting.say(f"== zero/few-shot scoring of {name} ({shots} shots)")
            zeroshot.evaluate_workdir(dirs[name], single._names(c.tasks), shots,
                                      examples=c.zeroshot_examples,
                                      output=os.path.join(out_dir, "zeroshot", f"{name}.json"))


def _compare_many(c, out_dir: str, force_unlock: bool) -> dict:
    t0 = time.perf_counter()
    cfgs, dirs = _planned_configs(c, out_dir)
    single.check_finetunable(c, cfgs)  # before any pretraining or fine-tuning
    twins = scratch_twins(cfgs)
    todo, skipped = plan(c, cfgs, twins)
    _pretrain_all(c, dirs, force_unlock)
    _zeroshot(c, out_dir, cfgs, dirs)
    probes.probe_all(c, out_dir, dirs, twins, single._names(c.tasks))
    twin_cfg = {twin: workdir_lib.read_config(dirs[name]) for name, twin in twins.items()}
    init_dirs = {**dirs, **dict.fromkeys(twin_cfg, "")}
    baseline = {**twins, **{t: t for t in twin_cfg}}
    runs = []
    for i, (task, budget, variant, seed) in enumerate(todo):
        start = time.perf_counter()
        pre = twin_cfg.get(variant) or workdir_lib.read_config(dirs[variant])
        r = single._finetune(c, out_dir, pre, init_dirs, task, budget, variant, seed,
                             force_unlock, baseline=baseline[variant])
        runs.append(r)
        reporting.say(f"[{i + 1}/{len(todo)}] {task} {variant} seed {seed}: test "
                      f"{r['main_metric']} {r['test'][r['main_metric']]:.4f} "
                      f"({time.perf_counter() - start:.0f} s)")
    described = {name: inits_lib.describe(name, d) for name, d in dirs.items()}
    intrinsic = {name: inits_lib.intrinsic(d) for name, d in dirs.items()}
    intrinsic = {k: {**v, **ranking.zeroshot_of(out_dir, k), **probes.probes_of(out_dir, k)}
                 for k, v in intrinsic.items()}
    intrinsic.update({t: probes.probes_of(out_dir, t) for t in set(twins.values())})
    summary = report.summarize(runs)
    extra = ranking.sections(summary, described, twins, intrinsic, skipped)
    context = _context(c, described, time.perf_counter() - t0)
    summary = report.write_report(out_dir, runs, title=c.get("title") or (
        "Which initialisation? Fine-tuned from each and from scratch"), context=context,
        extra_md=extra)
    summary["ranking"] = ranking.table(summary, described, twins)
    summary["correlations"] = ranking.correlations(summary, intrinsic)
    with open(os.path.join(out_dir, "ranking.json"), "w") as f:
        json.dump({"ranking": summary["ranking"], "correlations": summary["correlations"],
                   "initialisations": described, "intrinsic": intrinsic,
                   "skipped": skipped}, f, indent=1, default=str)
    reporting.say("\n".join([""] + ranking.headline(summary["ranking"])
                            + [f"Report: {os.path.join(out_dir, 'report.md')}"]))
    return summary


def _context(c, described: dict, seconds: float) -> dict:
    return {
        "command": " ".join(["python -m launch.compare"] + sys.argv[1:]),
        **{f"init {k}": v["context"] for k, v in described.items()},
        "fine-tuning": json.dumps(c.finetune.to_dict(), sort_keys=True),
        "seeds": c.seeds, "devices": f"{jax.device_count()} × {jax.devices()[0].device_kind}",
        "cpus": os.cpu_count(), "wall time": f"{seconds / 60:.1f} min",
        "date": time.strftime("%Y-%m-%d"),
    }
