"""What ``launch.evaluate`` adds to a classification (or regression) split's metrics: the
per-class report, the majority-class baseline, calibration, and every example's prediction.

Files (in the evaluation's output directory): ``predictions.jsonl``, one line per example in file
order (``index``, ``text_a``, ``text_b``, ``label``, ``predicted``, ``probabilities`` by label
name; regression: the predicted value); ``reliability.png``, the reliability diagram.
"""

from __future__ import annotations

import json
import os

import numpy as np

from launch.evaluation import classification
from launch.train import storage

ECE_BINS = 15


def _write_predictions(path: str, examples: dict, labels, predicted, probabilities,
                       names) -> None:
    text_b = examples.get("text_b")
    with storage.open_file(path, "w") as f:
        for i in range(len(labels)):
            row = {"index": i, "text_a": examples["text_a"][i],
                   "text_b": text_b[i] if text_b is not None else None}
            if probabilities is None:
                row.update(label=float(labels[i]), predicted=float(predicted[i]))
            else:
                row.update(label=names[int(labels[i])], predicted=names[int(predicted[i])],
                           probabilities={n: round(float(p), 6)
                                          for n, p in zip(names, probabilities[i], strict=True)})
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def details(outputs: dict, batch: dict, spec, examples: dict, output: str) -> dict:
    """The report of a gathered classification/regression split (``scoring.gather``'s host
    arrays, padding dropped); writes ``predictions.jsonl`` and ``reliability.png`` under
    ``output`` unless it is "".

    Returns:
      classification: ``{"report": classification.classification_report(...), "ece": float,
      "reliability": classification.reliability_bins(...)}``; regression: ``{}`` (its metrics
      are the task's), only the predictions file.
    """
    logits, labels = np.asarray(outputs["logits"]), np.asarray(batch["labels"])
    weights = np.asarray(batch["example_weights"])
    n = min(len(labels), len(examples["labels"]))
    names = list(spec.label_names)
    if spec.kind == "regression":
        if output:
            storage.makedirs(output)
            _write_predictions(os.path.join(output, "predictions.jsonl"), examples, labels[:n],
                               logits[:n, 0], None, names)
        return {}
    probabilities = classification.softmax(logits)
    bins = classification.reliability_bins(probabilities, labels, weights, ECE_BINS)
    out = {"report": classification.classification_report(probabilities, labels, weights, names),
           "ece": classification.ece_of_bins(bins), "reliability": bins}
    if output:
        storage.makedirs(output)
        _write_predictions(os.path.join(output, "predictions.jsonl"), examples, labels[:n],
                           probabilities[:n].argmax(-1), probabilities[:n], names)
        classification.reliability_plot(
            out["reliability"], os.path.join(output, "reliability.png"),
            f"{spec.name}: ECE {out['ece']:.3f}")
    return out


def describe(details: dict) -> str:
    """The report as lines under the metrics line ("" for none): a per-class table, the
    summary figures beside the majority-class baseline, and the ECE."""
    if not details:
        return ""
    r = details["report"]
    lines = ["", f"{'class':<16} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}"]
    for c in r["per_class"]:
        lines.append(f"{c['label'][:16]:<16} {c['precision']:>9.3f} {c['recall']:>7.3f} "
                     f"{c['f1']:>7.3f} {int(round(c['support'])):>8d}")
    m = r["majority_baseline"]
    lines.append(f"macro-F1 {r['macro_f1']:.3f}, balanced accuracy {r['balanced_accuracy']:.3f}, "
                 f"accuracy {r['accuracy']:.3f} (majority class {m['label']!r}: macro-F1 "
                 f"{m['macro_f1']:.3f}, balanced accuracy {m['balanced_accuracy']:.3f}, accuracy "
                 f"{m['accuracy']:.3f}); expected calibration error {details['ece']:.3f} "
                 f"({ECE_BINS} bins)")
    lines.append("confusion matrix (rows: true " + ", ".join(r["labels_order"]) + "): "
                 + "; ".join(" ".join(str(int(v)) for v in row) for row in r["confusion_matrix"]))
    return "\n".join(lines)
