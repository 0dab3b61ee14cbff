"""Ridge probes of every initialisation and every scratch twin, as the comparison's cheap measure.

For each variant of a many-initialisation comparison (a pretraining run, a converted checkpoint,
or a from-scratch twin, probed at its random initialisation) and each classification task of the
comparison, ``launch/evaluation/probing.probe`` fits closed-form ridge probes on every layer's
frozen, mean-pooled features (``probe_examples`` training examples, the comparison's dev/test
subsets, its fine-tuning sequence length). The layer with the best *dev* score is kept, and its
test accuracy is the variant's ``probe/<task>/accuracy``: a measure that costs seconds, means the
same for every family, and that the report correlates with the fine-tuned accuracy.

Written to ``WORKDIR/probe/<variant>.json`` (the kept figures, their layer, the majority class,
and the settings); a variant whose file has the same settings is not probed again.
"""

from __future__ import annotations

import json
import os

from data import tasks as tasks_lib
from data.options import TaskOptions
from launch.evaluation import probing
from launch.train import reporting


def _path(out_dir: str, variant: str) -> str:
    return os.path.join(out_dir, "probe", variant.replace(":", "_") + ".json")


def probe_tasks(task_names: list[str]) -> list[str]:
    """The classification tasks among ``task_names`` (probes score accuracy)."""
    return [t for t in task_names
            if tasks_lib.task_spec(TaskOptions(name=t)).kind == "classification"]


def probe_all(c, out_dir: str, dirs: dict[str, str], twins: dict[str, str],
              task_names: list[str]) -> None:
    """Probes every initialisation in ``dirs`` (its checkpoint) and every twin in ``twins``
    (its architecture at random initialisation, seed 0) on the classification tasks."""
    examples = int(c.get("probe_examples") or 0)
    names = probe_tasks(task_names)
    if not examples or not names:
        return
    variants = {name: (d, "checkpoint") for name, d in dirs.items()}
    for name, twin in twins.items():
        variants.setdefault(twin, (dirs[name], "random"))
    for variant, (run_dir, init) in variants.items():
        path = _path(out_dir, variant)
        settings = {"tasks": names, "probe_examples": examples,
                    "eval_examples": int(c.get("eval_examples") or 0),
                    "max_seq_length": int(c.finetune.data.max_seq_length)}
        if os.path.exists(path):
            with open(path) as f:
                if json.load(f).get("settings") == settings:
                    continue
        reporting.say(f"== ridge probes of {variant} ({init}) on {', '.join(names)}")
        enc = probing.load_encoder(run_dir, init=init,
                                   max_seq_length=settings["max_seq_length"])
        out = {"settings": settings}
        for task in names:
            result = probing.probe(enc, task, max_train_examples=examples,
                                   max_eval_examples=settings["eval_examples"])
            best = max(result["layers"], key=lambda r: r["dev"])
            out[f"probe/{task}/accuracy"] = best["test"]
            out[f"probe/{task}/layer"] = best["layer"]
            out[f"probe/{task}/majority"] = result["majority"]
            reporting.say(f"{variant} {task}: probe test accuracy {best['test']:.4f} "
                          f"({best['layer']}, best on dev; majority {result['majority']:.4f})")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "w") as f:
            json.dump(out, f, indent=1)
        os.replace(path + ".tmp", path)


def probes_of(out_dir: str, variant: str) -> dict[str, float]:
    """``probe/<task>/accuracy`` figures the comparison measured for ``variant``."""
    path = _path(out_dir, variant)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return {k: float(v) for k, v in json.load(f).items()
                if k.startswith("probe/") and k.endswith("/accuracy")}
