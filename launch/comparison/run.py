"""What pretraining buys: the same architecture fine-tuned from a checkpoint and from scratch.

One call pretrains (or reuses a pretraining run), optionally continues pretraining on each chosen
task's unlabelled training text (task-adaptive pretraining), fine-tunes every (task, label budget,
initialisation, seed), and writes the report (``launch/comparison/report.py``). Every run has its
own workdir under ``WORKDIR/runs``; finished runs are reused, so an interrupted comparison resumes.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time

import jax
import ml_collections

from data import tasks
from launch.comparison import inits as inits_lib
from launch.comparison import report, seq2seq
from launch.configs import finetune as finetune_configs
from launch.finetuning import run as finetuning
from launch.finetuning import setup as finetune_setup
from launch.pretraining import run as pretraining
from launch.train import lock, reporting
from launch.train import workdir as workdir_lib
from launch.train.data_options import task_options
from lm import models

SCRATCH, PRETRAINED, TAPT = "scratch", "pretrained", "pretrained+tapt"
# Fine-tuning config keys added since runs were made, at the value that reproduces those runs:
# a finished run without them is still this comparison's.
ADDED_AT_DEFAULT = ("data.layout: None -> 'auto'", "task.max_eval_examples: None -> 0")
_DOC_SENTENCES = 8  # task texts are grouped into pseudo-documents of this many lines


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _merge(cfg: ml_collections.ConfigDict, overrides: ml_collections.ConfigDict) -> None:
    for key, value in overrides.items():
        if isinstance(value, ml_collections.ConfigDict):
            _merge(cfg[key], value)
        else:
            cfg[key] = value


def finetune_config(c, task: str, *, pretrain_cfg: dict, init_from: str, seed: int,
                    budget: int) -> ml_collections.ConfigDict:
    """The fine-tuning config of one run. Both twins get the pretrained run's architecture and
    tokenizer explicitly, so they differ only in where the encoder's weights come from."""
    cfg = finetune_configs.get_config(task)
    _merge(cfg, c.finetune)
    cfg.seed, cfg.init_from, cfg.task.max_train_examples = seed, init_from, budget
    cfg.task.max_eval_examples = c.get("eval_examples") or 0
    finetune_setup.inherit(cfg, pretrain_cfg)
    return cfg


def task_texts(task: str) -> list[str]:
    """The task's training texts without labels (never dev or test), for adaptive pretraining."""
    examples = tasks.load_examples(task_options(finetune_configs.get_config(task).task), "train")
    if isinstance(examples, list):  # span QA
        return [t for ex in examples for t in (ex["question"], ex["context"])]
    return list(examples["text_a"]) + list(examples["text_b"] or [])


def write_task_corpus(task: str, path: str) -> int:
    """Writes the task's training texts as a corpus: one per line, blank lines every few lines.

    Returns:
      The number of texts written.
    """
    texts = [" ".join(t.split()) for t in task_texts(task)]
    texts = [t for t in texts if t]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        for i, t in enumerate(texts):
            f.write(t + "\n")
            if i % _DOC_SENTENCES == _DOC_SENTENCES - 1:
                f.write("\n")
    os.replace(path + ".tmp", path)
    return len(texts)


def _pretrain(c, out_dir: str, force_unlock: bool) -> str:
    """The base pretraining workdir: ``pretrain_from``, or a run here (resumed if started)."""
    if c.pretrain_from:
        return c.pretrain_from
    run_dir = os.path.join(out_dir, "pretrain")
    if not os.path.exists(os.path.join(run_dir, "results.json")):
        reporting.say(f"== pretraining {c.pretrain.model.arch} → {run_dir}")
        pretraining.train_and_evaluate(c.pretrain, run_dir, force_unlock=force_unlock)
    return run_dir


def _tapt(c, task: str, base_dir: str, out_dir: str, force_unlock: bool) -> str:
    """Continues pretraining ``base_dir``'s model on ``task``'s training texts."""
    run_dir = os.path.join(out_dir, "tapt", task.replace("/", "_"))
    if os.path.exists(os.path.join(run_dir, "results.json")):
        return run_dir
    corpus = os.path.join(run_dir, "corpus.txt")
    n = write_task_corpus(task, corpus)
    cfg = ml_collections.ConfigDict(workdir_lib.read_config(base_dir))
    cfg.init_from, cfg.data.corpus = base_dir, corpus
    cfg.train.steps, cfg.train.learning_rate = c.tapt_steps, c.tapt_learning_rate
    cfg.train.warmup_steps = c.tapt_steps // 10
    cfg.train.eval_every = cfg.train.checkpoint_every = c.tapt_steps
    cfg.data.eval_fraction = 0.05
    reporting.say(f"== task-adaptive pretraining on {n} {task} training texts → {run_dir}")
    pretraining.train_and_evaluate(cfg, run_dir, force_unlock=force_unlock)
    return run_dir


def plan(c) -> list[tuple[str, int, str, int]]:
    """Every fine-tuning run as (task, budget, variant, seed); budget 0 = all labels."""
    per_task = {}
    for part in [p for p in c.budgets.split(";") if p.strip()]:
        task, sep, values = part.partition("=")
        if not sep:
            raise ValueError(f"budgets={c.budgets!r}: write task=n,n;task=n (0 = all labels)")
        per_task[task.strip()] = _ints(values)
    runs = []
    for task in _names(c.tasks):
        budgets = per_task.get(task, [0])
        variants = [SCRATCH, PRETRAINED] + ([TAPT] if task in _names(c.tapt_tasks) else [])
        runs += [(task, b, v, s) for b in budgets for s in range(c.seeds) for v in variants]
    return runs


def supports(arch: str, task: str) -> bool:
    """Whether pretrax has a fine-tuning model of ``arch`` for ``task``'s kind (GPT: no span QA)."""
    kind = tasks.task_spec(task_options(finetune_configs.get_config(task).task)).kind
    return kind in models.FINETUNE_MODELS.get(arch, {})


def check_finetunable(c, pretrain_cfgs: dict[str, dict]) -> None:
    """Resolves the fine-tuning config of every (initialisation, task) before anything runs.

    Args:
      pretrain_cfgs: name → the pretraining run's config (its ``config.json`` as data, or the
        config it will be pretrained with).

    Raises:
      ValueError: naming the initialisation and the task, with what to change.
    """
    for name, pre in pretrain_cfgs.items():
        for task in _names(c.tasks):
            if not supports(pre["model"]["arch"], task):
                continue  # left out of the plan, and said so in the report
            cfg = finetune_config(c, task, pretrain_cfg=pre, init_from="", seed=0, budget=0)
            try:
                finetune_setup.resolve(cfg)
            except ValueError as e:
                raise ValueError(f"initialisation {name!r} cannot fine-tune {task}: {e}") from None


def _run_dir(out_dir: str, task: str, budget: int, variant: str, seed: int) -> str:
    return os.path.join(out_dir, "runs", task.replace("/", "_"), str(budget or "all"),
                        re.sub(r"[+:]", "_", variant), f"seed{seed}")


def _finetune(c, out_dir, pretrain_cfg, init_dirs, task, budget, variant, seed,
              force_unlock: bool, baseline: str = SCRATCH) -> dict:
    run_dir = _run_dir(out_dir, task, budget, variant, seed)
    path = os.path.join(run_dir, "results.json")
    cfg = finetune_config(c, task, pretrain_cfg=pretrain_cfg, init_from=init_dirs[variant],
                          seed=seed, budget=budget)
    if os.path.exists(path):
        changes = [x for x in workdir_lib.config_changes(run_dir, finetune_setup.resolve(cfg))
                   if x not in ADDED_AT_DEFAULT]
        if changes:
            raise ValueError(f"{run_dir} holds a finished run with another config ({changes}); "
                             "use a new --workdir for a different comparison")
    else:
        finetuning.finetune(cfg, run_dir, force_unlock=force_unlock)
    with open(path) as f:
        return {**json.load(f), "variant": variant, "budget": budget, "baseline": baseline}


def _context(c, base_dir: str, seconds: float) -> dict:
    return {
        "command": " ".join(["python -m launch.compare"] + sys.argv[1:]),
        "pretraining": inits_lib.describe(PRETRAINED, base_dir)["context"],
        "fine-tuning": json.dumps(c.finetune.to_dict(), sort_keys=True),
        "seeds": c.seeds, "devices": f"{jax.device_count()} × {jax.devices()[0].device_kind}",
        "cpus": os.cpu_count(), "wall time": f"{seconds / 60:.1f} min",
        "date": time.strftime("%Y-%m-%d"),
    }


def compare(c, out_dir: str, *, force_unlock: bool = False) -> dict:
    """Runs the comparison described by ``c`` (launch/configs/compare.py); returns the summary.

    ``out_dir``'s lock (``lock.acquire``) is held throughout, and each run under it takes its
    own; ``force_unlock`` removes those held on another host instead of refusing."""
    with lock.acquire(out_dir, force=force_unlock):
        return _compare(c, out_dir, force_unlock)


def _compare(c, out_dir: str, force_unlock: bool) -> dict:
    t0 = time.perf_counter()
    if c.pretrain_from:
        check_finetunable(c, {PRETRAINED: inits_lib.read_config(c.pretrain_from)})
    else:
        check_finetunable(c, {PRETRAINED: c.pretrain.to_dict()})
    base_dir = _pretrain(c, out_dir, force_unlock)
    pretrain_cfg = workdir_lib.read_config(base_dir)
    init_dirs = {SCRATCH: "", PRETRAINED: base_dir}
    runs, todo = [], plan(c)
    for task in _names(c.tapt_tasks):
        init_dirs[TAPT] = _tapt(c, task, base_dir, out_dir, force_unlock)  # one at a time
    for i, (task, budget, variant, seed) in enumerate(todo):
        start = time.perf_counter()
        if variant == TAPT:
            init_dirs[TAPT] = os.path.join(out_dir, "tapt", task.replace("/", "_"))
        r = _finetune(c, out_dir, pretrain_cfg, init_dirs, task, budget, variant, seed,
                      force_unlock)
        runs.append(r)
        reporting.say(f"[{i + 1}/{len(todo)}] {task} labels={budget or 'all'} {variant} "
                      f"seed {seed}: test {r['main_metric']} "
                      f"{r['test'][r['main_metric']]:.4f} ({time.perf_counter() - start:.0f} s)")
    summary = report.write_report(
        out_dir, runs, title="What pretraining buys: fine-tuning from pretraining vs scratch",
        context={**_context(c, base_dir, time.perf_counter() - t0),
                 **seq2seq.baseline_context(runs)})
    _print_headline(summary, out_dir)
    return summary


def _print_headline(summary: dict, out_dir: str) -> None:
    reporting.say("\n== pretrained vs scratch (test, main metric: seed means, Δ [95% CI])")
    for x in summary["comparisons"]:
        if x["split"] != "test" or not x["main"]:
            continue
        ci = f" [{x['ci'][0]:+.4f}, {x['ci'][1]:+.4f}]" if x["ci"] else ""
        reporting.say(f"{x['task']:<18} labels={x['budget'] or 'all':<5} {x['variant']:<16} "
                      f"{x['metric']} {x['mean']:.4f} vs scratch {x['mean_baseline']:.4f}: "
                      f"Δ {x['diff']:+.4f}{ci}, > 2 std: {'yes' if x['beats_by_2std'] else 'no'}")
    reporting.say(f"Report: {os.path.join(out_dir, 'report.md')}")
