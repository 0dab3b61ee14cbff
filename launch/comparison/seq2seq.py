"""Seq2seq hooks of ``launch.compare``: the T5 pretraining line of the report's context, and
the baselines that learn nothing (copy the source, the lead sentence) beside the test figures.

Everything else (the plan, the twins, the statistics) is the comparison's own: a seq2seq
fine-tuning run's ``results.json`` has the same ``dev``/``test``/``main_metric`` fields.
"""

from __future__ import annotations


def pretraining_summary(base_dir: str, pre: dict) -> str | None:
    """The context line of a T5 (seq2seq-objective) pretraining run; None for the others."""
    if "eval/seq2seq_loss" not in pre:
        return None
    return (f"{base_dir}: {pre['step']} steps, {pre['train_seconds'] / 60:.1f} min; eval "
            f"seq2seq loss {pre['eval/seq2seq_loss']:.3f} (unigram "
            f"{pre['eval/unigram_entropy']:.3f}), target-token accuracy "
            f"{pre['eval/seq2seq_accuracy']:.3f}")


def baseline_context(runs: list[dict]) -> dict[str, str]:
    """``{"baseline TASK": "copy_source_bleu 1.01, …"}``: each seq2seq task's test baseline
    (the same test set for every run of a task, so the first run's)."""
    out = {}
    for r in runs:
        key = f"baseline {r['task']} (test, learns nothing)"
        if r.get("test_baseline") and key not in out:
            out[key] = ", ".join(f"{k} {v:.2f}" for k, v in r["test_baseline"].items())
    return out
