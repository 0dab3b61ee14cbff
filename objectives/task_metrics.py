"""Host-side metrics of fine-tuning tasks (numpy only), computed once over a whole eval split.

Every metric takes ``(predictions, labels, weights=None)``:

* ``predictions``: class indices [N], or scores [N, C] (argmax taken) for the classification
  metrics; predicted values [N] for ``pearson``/``spearman``;
* ``labels``: class indices or target values [N];
* ``weights``: float [N] multipliers, e.g. ``example_weights`` (0 = a padding row); None = all 1.

Class metrics are weighted counts. The correlations are weighted too; rows of weight 0 are dropped
first, so eval padding never changes a value. Degenerate cases (no positives, a constant
prediction) give 0.0 instead of NaN: "no signal" must still compare as a number when the best
checkpoint is picked.
"""

from __future__ import annotations

import numpy as np


def _prepare(predictions, labels, weights, *, classes: bool):
    """Flattened float64 weights and the rows with weight > 0 of predictions and labels."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if classes and predictions.ndim == labels.ndim + 1:
        predictions = predictions.argmax(-1)
    predictions, labels = predictions.reshape(-1), labels.reshape(-1)
    if predictions.shape != labels.shape:
        raise ValueError(f"predictions {predictions.shape} and labels {labels.shape} differ")
    weights = (np.ones(labels.shape) if weights is None
               else np.asarray(weights, np.float64).reshape(-1))
    if weights.shape != labels.shape:
        raise ValueError(f"weights {weights.shape} and labels {labels.shape} differ")
    keep = weights > 0
    return predictions[keep], labels[keep], weights[keep]


def _confusion(predictions, labels, weights) -> np.ndarray:
    """float64 [C, C] weighted counts: row = true class, column = predicted class."""
    predictions, labels = predictions.astype(np.int64), labels.astype(np.int64)
    size = int(max(predictions.max(initial=0), labels.max(initial=0))) + 1
    matrix = np.zeros((size, size))
    np.add.at(matrix, (labels, predictions), weights)
    return matrix


def _safe_divide(num: float, den: float) -> float:
    return float(num / den) if den > 0 else 0.0


def accuracy(predictions, labels, weights=None) -> float:
    """Weighted fraction of rows whose predicted class equals the label."""
    p, y, w = _prepare(predictions, labels, weights, classes=True)
    return _safe_divide(np.sum(w * (p == y)), np.sum(w))


def f1(predictions, labels, weights=None) -> float:
    """Binary F1 of the positive class 1: ``2 tp / (2 tp + fp + fn)``; 0.0 when undefined."""
    p, y, w = _prepare(predictions, labels, weights, classes=True)
    tp = np.sum(w * ((p == 1) & (y == 1)))
    fp = np.sum(w * ((p == 1) & (y != 1)))
    fn = np.sum(w * ((p != 1) & (y == 1)))
    return _safe_divide(2 * tp, 2 * tp + fp + fn)


def macro_f1(predictions, labels, weights=None) -> float:
    """Unweighted mean of per-class F1 over the classes that occur in labels or predictions."""
    p, y, w = _prepare(predictions, labels, weights, classes=True)
    if not len(y):
        return 0.0
    matrix = _confusion(p, y, w)
    tp = np.diag(matrix)
    true, predicted = matrix.sum(1), matrix.sum(0)
    present = np.union1d(np.unique(y), np.unique(p)).astype(np.int64)
    denominators = true[present] + predicted[present]
    scores = np.where(denominators > 0, 2 * tp[present] / np.maximum(denominators, 1e-300), 0.0)
    return float(scores.mean())


def matthews(predictions, labels, weights=None) -> float:
    """Matthews correlation coefficient (multi-class form of Gorodkin 2004); 0.0 if undefined."""
    p, y, w = _prepare(predictions, labels, weights, classes=True)
    if not len(y):
        return 0.0
    matrix = _confusion(p, y, w)
    total, correct = matrix.sum(), np.trace(matrix)
    true, predicted = matrix.sum(1), matrix.sum(0)
    covariance = correct * total - true @ predicted
    variance = (total ** 2 - predicted @ predicted) * (total ** 2 - true @ true)
    return _safe_divide(covariance, np.sqrt(variance))


def _weighted_pearson(x, y, w) -> float:
    x, y = x.astype(np.float64), y.astype(np.float64)
    total = np.sum(w)
    if total <= 0:
        return 0.0
    dx, dy = x - np.sum(w * x) / total, y - np.sum(w * y) / total
    return _safe_divide(np.sum(w * dx * dy), np.sqrt(np.sum(w * dx * dx) * np.sum(w * dy * dy)))


def pearson(predictions, labels, weights=None) -> float:
    """Weighted Pearson correlation of predictions and labels; 0.0 if either is constant."""
    p, y, w = _prepare(predictions, labels, weights, classes=False)
    return _weighted_pearson(p, y, w)


def average_ranks(values) -> np.ndarray:
    """Ranks 1..N of ``values``; tied values share the mean of their ranks (as scipy's
    ``rankdata(method="average")``)."""
    values = np.asarray(values).reshape(-1)
    if not len(values):
        return np.zeros(0)
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    is_new = np.r_[True, sorted_values[1:] != sorted_values[:-1]]  # A run of ties starts here.
    starts = np.flatnonzero(is_new)
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values))
    ranks[order] = ((starts + 1 + ends) / 2.0)[np.cumsum(is_new) - 1]
    return ranks


def spearman(predictions, labels, weights=None) -> float:
    """Spearman rank correlation: Pearson of average ranks (ties share their mean rank).

    Ranks are taken over the rows of weight > 0; the weights then weight the Pearson of ranks,
    which for 0/1 weights is the plain Spearman of the kept rows.
    """
    p, y, w = _prepare(predictions, labels, weights, classes=False)
    return _weighted_pearson(average_ranks(p), average_ranks(y), w)


METRICS = {
    "accuracy": accuracy,
    "f1": f1,
    "macro_f1": macro_f1,
    "matthews": matthews,
    "pearson": pearson,
    "spearman": spearman,
}


def compute(names, predictions, labels, weights=None) -> dict[str, float]:
    """``{name: value}`` for each metric name (see ``METRICS``).

    Raises:
      ValueError: for an unknown name; ``"squad"`` is scored by the span-QA evaluator instead.
    """
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown task metrics {unknown}; known: {sorted(METRICS)} (SQuAD's "
                         "exact/f1 come from the span-QA evaluator, not from here)")
    return {n: METRICS[n](predictions, labels, weights) for n in names}
