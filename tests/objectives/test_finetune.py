"""Fine-tuning objectives against hand-computed values; padded rows count for nothing."""

import jax.numpy as jnp
import numpy as np
import pytest

from objectives import OBJECTIVES, total_loss


def test_classification_loss_and_accuracy_skip_padding_rows():
    logits = jnp.asarray([[2.0, 0.0], [0.0, 1.0], [5.0, -5.0]])
    batch = {"labels": jnp.asarray([0, 0, 1]), "example_weights": jnp.asarray([1.0, 1.0, 0.0])}
    terms, metrics = OBJECTIVES["classification"].loss({"logits": logits}, batch)
    expected = (np.log1p(np.exp(-2.0)) + np.log1p(np.exp(1.0))) / 2
    assert float(total_loss(terms)) == pytest.approx(expected, rel=1e-6)
    s, w = metrics["task_accuracy"]
    assert (float(s), float(w)) == (1.0, 2.0)


def test_regression_is_weighted_mean_squared_error():
    batch = {"labels": jnp.asarray([1.0, 2.0, 9.0]),
             "example_weights": jnp.asarray([1.0, 1.0, 0.0])}
    terms, _ = OBJECTIVES["regression"].loss({"logits": jnp.asarray([[2.0], [2.0], [0.0]])}, batch)
    assert float(total_loss(terms)) == pytest.approx(0.5)


def test_span_loss_is_mean_of_start_and_end_cross_entropy():
    length = 4
    start = jnp.zeros((1, length))  # uniform: -log(1/L) each
    end = jnp.asarray([[0.0, 0.0, 10.0, 0.0]])
    batch = {"start_positions": jnp.asarray([1]), "end_positions": jnp.asarray([2]),
             "example_weights": jnp.asarray([1.0])}
    terms, metrics = OBJECTIVES["span_qa"].loss({"start_logits": start, "end_logits": end}, batch)
    end_ce = -np.log(np.exp(10.0) / (np.exp(10.0) + 3))
    assert float(total_loss(terms)) == pytest.approx((np.log(length) + end_ce) / 2, rel=1e-5)
    assert float(metrics["end_accuracy"][0]) == 1.0
