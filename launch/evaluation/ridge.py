"""Closed-form ridge probes and feature ranks (numpy, float64).

Features are standardised with the training split's mean and standard deviation; the probe is
least squares with an L2 penalty, solved for every λ of a grid at once from one SVD, and the λ
with the best dev score is kept. Classification regresses centred one-hot targets (one-vs-rest)
and predicts the argmax; regression predicts the value.
"""

from __future__ import annotations

import dataclasses

import numpy as np

LAMBDAS = tuple(10.0 ** k for k in range(-2, 6))


@dataclasses.dataclass
class Fit:
    """A fitted probe: standardisation, weights [D, C], intercept [C], its λ and dev score."""
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    intercept: np.ndarray
    lam: float
    dev_score: float


def _targets(labels: np.ndarray, classes: int) -> np.ndarray:
    if classes:
        return np.eye(classes)[np.asarray(labels, np.int64)]
    return np.asarray(labels, np.float64).reshape(-1, 1)


def _predict(weights, intercept, x_std):
    return x_std @ weights + intercept


def _metric(scores: np.ndarray, labels: np.ndarray, classes: int) -> float:
    if classes:
        return float(np.mean(scores.argmax(-1) == labels))
    p, y = scores[:, 0], np.asarray(labels, np.float64)
    if p.std() == 0 or y.std() == 0:
        return 0.0
    return float(np.corrcoef(p, y)[0, 1])


def fit_and_select(x_train, y_train, x_dev, y_dev, classes: int,
                   lambdas=LAMBDAS) -> Fit:
    """The ridge probe of ``x_train`` [N, D] → ``y_train`` whose λ (of ``lambdas``) scores
    best on dev (``classes`` = 0: regression)."""
    x = np.asarray(x_train, np.float64)
    mean, scale = x.mean(0), x.std(0)
    scale = np.where(scale > 0, scale, 1.0)
    xs = (x - mean) / scale
    t = _targets(y_train, classes)
    intercept = t.mean(0)
    u, s, vt = np.linalg.svd(xs, full_matrices=False)
    projected = u.T @ (t - intercept)
    dev = (np.asarray(x_dev, np.float64) - mean) / scale
    best = None
    for lam in lambdas:
        w = vt.T @ ((s / (s ** 2 + lam))[:, None] * projected)
        score = _metric(_predict(w, intercept, dev), np.asarray(y_dev), classes)
        if best is None or score > best.dev_score:
            best = Fit(mean, scale, w, intercept, float(lam), score)
    return best


def score(fit: Fit, x, y, classes: int) -> float:
    """Accuracy (classification) or Pearson correlation (regression) of ``fit`` on ``x``."""
    xs = (np.asarray(x, np.float64) - fit.mean) / fit.scale
    return _metric(_predict(fit.weights, fit.intercept, xs), np.asarray(y), classes)


def ranks(x) -> dict[str, float]:
    """``effective_rank`` (exp of the entropy of the normalised singular values of the centred
    ``x`` [N, D]; Roy & Vetterli 2007) and ``rank99`` (principal components holding 99% of the
    variance)."""
    x = np.asarray(x, np.float64)
    s = np.linalg.svd(x - x.mean(0), compute_uv=False)
    if s.sum() <= 0:
        return {"effective_rank": 0.0, "rank99": 0}
    p = s / s.sum()
    p = p[p > 0]
    variance = np.cumsum(s ** 2) / np.sum(s ** 2)
    return {"effective_rank": float(np.exp(-np.sum(p * np.log(p)))),
            "rank99": int(np.searchsorted(variance, 0.99) + 1)}
