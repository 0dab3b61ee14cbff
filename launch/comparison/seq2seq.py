"""Seq2seq hooks of ``launch.compare``: the baselines that learn nothing (copy the source, the
lead sentence) beside the test figures, in the report's context.

Everything else (the plan, the twins, the statistics) is the comparison's own: a seq2seq
fine-tuning run's ``results.json`` has the same ``dev``/``test``/``main_metric`` fields.
"""

from __future__ import annotations


def baseline_context(runs: list[dict]) -> dict[str, str]:
    """``{"baseline TASK": "copy_source_bleu 1.01, …"}``: each seq2seq task's test baseline
    (the same test set for every run of a task, so the first run's)."""
    out = {}
    for r in runs:
        key = f"baseline {r['task']} (test, learns nothing)"
        if r.get("test_baseline") and key not in out:
            out[key] = ", ".join(f"{k} {v:.2f}" for k, v in r["test_baseline"].items())
    return out
