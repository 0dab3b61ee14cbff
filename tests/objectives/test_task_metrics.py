"""Tests for objectives/task_metrics.py: hand-computed values, weights, and scipy/sklearn parity."""

import numpy as np
import pytest

from objectives import task_metrics as tm

# Hand example: labels 0,0,1,1,1,2; predictions 0,1,1,1,0,2.
LABELS = np.array([0, 0, 1, 1, 1, 2])
PREDS = np.array([0, 1, 1, 1, 0, 2])


def test_accuracy_by_hand_and_from_scores():
    assert tm.accuracy(PREDS, LABELS) == pytest.approx(4 / 6)
    scores = np.eye(3)[PREDS] * 5.0  # [N, C] → argmax
    assert tm.accuracy(scores, LABELS) == pytest.approx(4 / 6)


def test_weights_zero_rows_are_ignored_and_weights_count():
    padded_p = np.r_[PREDS, [2, 2]]
    padded_y = np.r_[LABELS, [0, 1]]
    weights = np.r_[np.ones(6), [0, 0]]
    for name in tm.METRICS:
        assert tm.METRICS[name](padded_p, padded_y, weights) == pytest.approx(
            tm.METRICS[name](PREDS, LABELS)), name
    # A weight of 2 counts a row twice.
    w = np.array([2, 1, 1, 1, 1, 1])
    assert tm.accuracy(PREDS, LABELS, w) == pytest.approx(5 / 7)
    assert tm.accuracy(np.r_[PREDS, 0], np.r_[LABELS, 0]) == pytest.approx(5 / 7)


def test_binary_f1_by_hand():
    y = np.array([1, 1, 1, 0, 0, 0, 1])
    p = np.array([1, 1, 0, 1, 0, 0, 0])
    # tp=2, fp=1, fn=2 → 4 / (4 + 3)
    assert tm.f1(p, y) == pytest.approx(4 / 7)
    assert tm.f1(np.zeros(4), np.zeros(4)) == 0.0  # No positives anywhere: defined as 0.


def test_macro_f1_by_hand():
    # Class 0: tp 1, fp 1, fn 1 → 0.5; class 1: tp 2, fp 1, fn 1 → 2/3; class 2: 1.0.
    assert tm.macro_f1(PREDS, LABELS) == pytest.approx((0.5 + 2 / 3 + 1.0) / 3)
    # A class only predicted (never true) still counts, with F1 0.
    assert tm.macro_f1([0, 1], [0, 0]) == pytest.approx((2 / 3 + 0.0) / 2)


def test_matthews_by_hand():
    y = np.array([1, 1, 1, 0, 0, 0, 1])
    p = np.array([1, 1, 0, 1, 0, 0, 0])
    tp, tn, fp, fn = 2, 2, 1, 2
    want = (tp * tn - fp * fn) / np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert tm.matthews(p, y) == pytest.approx(want)
    assert tm.matthews(y, y) == pytest.approx(1.0)
    assert tm.matthews(1 - y, y) == pytest.approx(-1.0)
    assert tm.matthews(np.ones(7), y) == 0.0  # Constant prediction: undefined → 0.


def test_pearson_and_spearman_by_hand():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert tm.pearson(x, 2 * x + 1) == pytest.approx(1.0)
    assert tm.pearson(x, -x) == pytest.approx(-1.0)
    assert tm.pearson(np.ones(4), x) == 0.0
    # Monotone but not linear: Spearman 1, Pearson below 1.
    assert tm.spearman(x, x ** 3) == pytest.approx(1.0)
    assert tm.pearson(x, x ** 3) < 1.0


def test_average_ranks_with_ties():
    np.testing.assert_allclose(tm.average_ranks([10, 20, 20, 5, 20]), [2, 4, 4, 1, 4])
    np.testing.assert_allclose(tm.average_ranks([3, 3]), [1.5, 1.5])
    # Hand Spearman with ties: ranks x = [1, 2.5, 2.5, 4], y = [1, 2, 3, 4].
    rx, ry = np.array([1, 2.5, 2.5, 4]), np.array([1, 2, 3, 4.0])
    want = np.corrcoef(rx, ry)[0, 1]
    assert tm.spearman([1, 2, 2, 3], [10, 20, 30, 40]) == pytest.approx(want)


def test_against_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, 200).astype(float)  # Many ties.
    y = x + rng.normal(size=200)
    assert tm.pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)
    assert tm.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)
    np.testing.assert_allclose(tm.average_ranks(x), stats.rankdata(x))


def test_against_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 300)
    p = np.where(rng.random(300) < 0.6, y, rng.integers(0, 4, 300))
    w = rng.random(300)
    assert tm.accuracy(p, y, w) == pytest.approx(metrics.accuracy_score(y, p, sample_weight=w))
    assert tm.macro_f1(p, y, w) == pytest.approx(
        metrics.f1_score(y, p, average="macro", sample_weight=w))
    assert tm.matthews(p, y, w) == pytest.approx(
        metrics.matthews_corrcoef(y, p, sample_weight=w))
    yb, pb = y % 2, p % 2
    assert tm.f1(pb, yb, w) == pytest.approx(metrics.f1_score(yb, pb, sample_weight=w))


def test_compute_names_and_errors():
    out = tm.compute(("accuracy", "macro_f1"), PREDS, LABELS)
    assert set(out) == {"accuracy", "macro_f1"}
    assert all(isinstance(v, float) for v in out.values())
    with pytest.raises(ValueError, match="squad"):
        tm.compute(("squad",), PREDS, LABELS)
    with pytest.raises(ValueError, match="differ"):
        tm.accuracy([1, 2], [1, 2, 3])
