"""What a classifier's user needs beyond accuracy: per-class precision/recall/F1, macro-F1,
balanced accuracy, the confusion matrix, the majority-class baseline beside them, and calibration
(expected calibration error and the reliability diagram's bins and plot).

Host-side numpy (matplotlib only for the plot, imported when drawn), so ``launch.evaluate`` and
the comparison report (``launch/comparison/report.py``) compute the same figures. Every function
takes ``probabilities`` float [N, C] (rows summing to 1; ``softmax`` of the logits), ``labels``
int [N] and optional ``weights`` float [N] (0 = a padding row, dropped).
"""

from __future__ import annotations

import numpy as np


def softmax(logits) -> np.ndarray:
    """float64 [N, C] probabilities of float logits [N, C] (numerically stable)."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _rows(probabilities, labels, weights):
    p = np.asarray(probabilities, np.float64)
    y = np.asarray(labels).reshape(-1).astype(np.int64)
    if p.ndim != 2 or p.shape[0] != y.shape[0]:
        raise ValueError(f"probabilities {p.shape} must be [N, C] for labels {y.shape}")
    w = np.ones(len(y)) if weights is None else np.asarray(weights, np.float64).reshape(-1)
    keep = w > 0
    return p[keep], y[keep], w[keep]


def confusion_matrix(predictions, labels, weights=None, num_classes: int = 0) -> np.ndarray:
    """float64 [C, C] weighted counts: row = true class, column = predicted class."""
    p, y = np.asarray(predictions, np.int64).reshape(-1), np.asarray(labels, np.int64).reshape(-1)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, np.float64).reshape(-1)
    size = max(num_classes, int(max(p.max(initial=-1), y.max(initial=-1))) + 1)
    matrix = np.zeros((size, size))
    np.add.at(matrix, (y, p), w)
    return matrix


def _divide(num, den):
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def per_class(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """``precision``, ``recall``, ``f1``, ``support`` [C] of a confusion matrix (0 where a
    class is never predicted or never true)."""
    tp = np.diag(matrix)
    true, predicted = matrix.sum(1), matrix.sum(0)
    precision, recall = _divide(tp, predicted), _divide(tp, true)
    return {"precision": precision, "recall": recall,
            "f1": _divide(2 * tp, true + predicted), "support": true}


def _summary(matrix: np.ndarray) -> dict[str, float]:
    """accuracy, macro-F1 (over the classes present in labels or predictions) and balanced
    accuracy (mean recall over the classes present in the labels) of a confusion matrix."""
    scores = per_class(matrix)
    true, predicted = matrix.sum(1), matrix.sum(0)
    present = (true + predicted) > 0
    return {"accuracy": float(_divide(np.trace(matrix), matrix.sum())),
            "macro_f1": float(scores["f1"][present].mean()) if present.any() else 0.0,
            "balanced_accuracy": (float(scores["recall"][true > 0].mean()) if (true > 0).any()
                                  else 0.0)}


def classification_report(probabilities, labels, weights=None, label_names=None) -> dict:
    """Everything an imbalanced test set needs, as plain JSON-able values.

    Returns:
      ``accuracy``, ``macro_f1``, ``balanced_accuracy``; ``per_class``: one
      ``{label, precision, recall, f1, support}`` per class; ``confusion_matrix`` (rows = true
      labels, columns = predicted, in ``labels_order``); ``majority_baseline``: the same three
      figures for always answering the most frequent label of these labels (the best constant
      guess on this set), and that label.
    """
    p, y, w = _rows(probabilities, labels, weights)
    c = p.shape[1]
    names = list(label_names) if label_names is not None else [str(i) for i in range(c)]
    matrix = confusion_matrix(p.argmax(-1), y, w, c)
    scores = per_class(matrix)
    support = matrix.sum(1)
    majority = int(np.argmax(support)) if len(y) else 0
    constant = confusion_matrix(np.full(len(y), majority), y, w, c)
    return {**_summary(matrix),
            "per_class": [{"label": names[i] if i < len(names) else str(i),
                           **{k: float(v[i]) for k, v in scores.items()}} for i in range(c)],
            "labels_order": names[:c],
            "confusion_matrix": matrix.tolist(),
            "majority_baseline": {"label": names[majority] if majority < len(names)
                                  else str(majority), **_summary(constant)}}


def reliability_bins(probabilities, labels, weights=None, bins: int = 15) -> dict:
    """Top-label confidence histogram: ``edges`` [bins + 1] over [0, 1] and per bin the weighted
    ``count``, mean ``confidence`` and ``accuracy`` (0 for an empty bin)."""
    if bins < 1:
        raise ValueError(f"bins={bins}: use 1 or more")
    p, y, w = _rows(probabilities, labels, weights)
    confidence, correct = p.max(-1), (p.argmax(-1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bin i holds (edges[i], edges[i+1]]; a confidence of exactly 0 goes to the first bin.
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    count = np.bincount(index, w, bins)
    return {"edges": edges.tolist(), "count": count.tolist(),
            "confidence": _divide(np.bincount(index, w * confidence, bins), count).tolist(),
            "accuracy": _divide(np.bincount(index, w * correct, bins), count).tolist()}


def expected_calibration_error(probabilities, labels, weights=None, bins: int = 15) -> float:
    """ECE (Guo et al., 2017): Σ_bins (bin weight / total) · |accuracy − mean confidence| of
    the top label, over ``bins`` equal-width confidence bins; 0 = calibrated."""
    return ece_of_bins(reliability_bins(probabilities, labels, weights, bins))


def ece_of_bins(b: dict) -> float:
    """``expected_calibration_error`` of bins ``reliability_bins`` already counted."""
    count = np.asarray(b["count"])
    if count.sum() <= 0:
        return 0.0
    gaps = np.abs(np.asarray(b["accuracy"]) - np.asarray(b["confidence"]))
    return float(np.sum(count * gaps) / count.sum())


def reliability_plot(bins: dict, path: str, title: str = "") -> str:
    """Writes the reliability diagram of ``reliability_bins``' output as a PNG at ``path``:
    accuracy per confidence bin against the diagonal of perfect calibration, with the bins'
    example counts underneath. Returns ``path``."""
    from matplotlib.figure import Figure  # Agg, headless: no pyplot state
    edges = np.asarray(bins["edges"])
    centres, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    count = np.asarray(bins["count"])
    fig = Figure(figsize=(4.5, 5.5))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    filled = count > 0
    top.bar(centres[filled], np.asarray(bins["accuracy"])[filled], width[filled] * 0.95,
            label="accuracy", color="tab:blue", edgecolor="black")
    top.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    top.set_ylabel("accuracy")
    top.set_ylim(0, 1)
    top.set_title(title or "reliability diagram")
    top.legend(loc="upper left")
    bottom.bar(centres, count, width * 0.95, color="tab:grey")
    bottom.set_xlabel("confidence (top-label probability)")
    bottom.set_ylabel("examples")
    bottom.set_xlim(0, 1)
    fig.tight_layout()
    from launch.train import storage  # local or a bucket (gs://)
    with storage.open_file(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    return path
