"""The classification report, calibration and ridge-probe arithmetic, against hand counts."""

import numpy as np
import pytest

from launch.evaluation import classification, ridge


def _one_hot_probs(predicted, classes, confidence=1.0):
    p = np.full((len(predicted), classes), (1 - confidence) / max(classes - 1, 1))
    p[np.arange(len(predicted)), predicted] = confidence
    return p


def test_report_on_an_imbalanced_set():
    # 8 true "a" (0), 2 true "b" (1); the model finds one b and calls one a a b.
    labels = np.array([0] * 8 + [1] * 2)
    predicted = np.array([0] * 7 + [1] + [1, 0])
    r = classification.classification_report(_one_hot_probs(predicted, 2), labels,
                                             label_names=["a", "b"])
    assert r["confusion_matrix"] == [[7.0, 1.0], [1.0, 1.0]]
    a, b = r["per_class"]
    assert (a["precision"], a["recall"], a["support"]) == pytest.approx((7 / 8, 7 / 8, 8))
    assert (b["precision"], b["recall"], b["f1"]) == pytest.approx((0.5, 0.5, 0.5))
    assert r["accuracy"] == pytest.approx(0.8)
    assert r["macro_f1"] == pytest.approx((7 / 8 + 0.5) / 2)
    assert r["balanced_accuracy"] == pytest.approx((7 / 8 + 0.5) / 2)
    m = r["majority_baseline"]  # always "a": accuracy 0.8, but recall 0 on b
    assert m["label"] == "a" and m["accuracy"] == pytest.approx(0.8)
    assert m["balanced_accuracy"] == pytest.approx(0.5)
    assert m["macro_f1"] == pytest.approx((2 * 8 / (8 + 10)) / 2)


def test_padding_rows_are_dropped():
    labels, predicted = np.array([0, 1, 1]), np.array([0, 1, 0])
    r = classification.classification_report(_one_hot_probs(predicted, 2), labels,
                                             weights=np.array([1.0, 1.0, 0.0]))
    assert r["accuracy"] == 1.0 and r["confusion_matrix"] == [[1.0, 0.0], [0.0, 1.0]]


def test_expected_calibration_error_by_hand():
    # 4 rows at confidence 0.9 (3 right) and 4 at 0.6 (all right): gaps 0.15 and 0.4.
    probs = np.array([[0.9, 0.1]] * 4 + [[0.6, 0.4]] * 4)
    labels = np.array([0, 0, 0, 1, 0, 0, 0, 0])
    ece = classification.expected_calibration_error(probs, labels, bins=10)
    assert ece == pytest.approx(0.5 * 0.15 + 0.5 * 0.4)
    bins = classification.reliability_bins(probs, labels, bins=10)
    assert sum(bins["count"]) == 8 and bins["accuracy"][8] == pytest.approx(0.75)
    # Perfectly calibrated: confidence 1 and always right.
    assert classification.expected_calibration_error(_one_hot_probs([0, 1], 2), [0, 1]) == 0.0


def test_reliability_plot_writes_a_png(tmp_path):
    probs = classification.softmax(np.random.default_rng(0).normal(size=(50, 3)))
    bins = classification.reliability_bins(probs, np.zeros(50, int))
    path = classification.reliability_plot(bins, str(tmp_path / "r.png"), "t")
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_ridge_probe_separates_separable_classes_and_not_noise():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = rng.normal(size=(300, 8))
    x[np.arange(300), y] += 4.0  # one informative direction per class
    fit = ridge.fit_and_select(x[:200], y[:200], x[200:250], y[200:250], 3)
    assert ridge.score(fit, x[250:], y[250:], 3) > 0.9
    noise = rng.normal(size=(300, 8))
    fit = ridge.fit_and_select(noise[:200], y[:200], noise[200:250], y[200:250], 3)
    assert ridge.score(fit, noise[250:], y[250:], 3) < 0.6


def test_ridge_regression_and_ranks():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 5))
    y = x @ np.array([1.0, -2.0, 0.0, 0.0, 0.5])
    fit = ridge.fit_and_select(x[:150], y[:150], x[150:], y[150:], 0)
    assert ridge.score(fit, x[150:], y[150:], 0) > 0.99
    low = rng.normal(size=(100, 3)) @ rng.normal(size=(3, 20))  # rank 3 in 20 dims
    r = ridge.ranks(low)
    assert r["rank99"] <= 3 and 1.0 < r["effective_rank"] <= 3.0 + 1e-6
    iso = ridge.ranks(rng.normal(size=(2000, 10)))
    assert iso["rank99"] == 10 and iso["effective_rank"] > 9.5
