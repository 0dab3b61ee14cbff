"""Sentence-order objectives and the weighted combination of objectives."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from objectives import OBJECTIVES, bert_pretrain, total_loss, weighted


def _ce(logits, labels):
    logits = np.asarray(logits, np.float64)
    log_z = np.log(np.exp(logits).sum(-1))
    return log_z - logits[np.arange(len(labels)), labels]


def _tiny():
    rng = np.random.default_rng(0)
    outputs = {"mlm_logits": jnp.asarray(rng.normal(size=(2, 3, 11)), jnp.float32),
               "sop_logits": jnp.asarray(rng.normal(size=(2, 2)), jnp.float32),
               "order_logits": jnp.asarray(rng.normal(size=(2, 9)), jnp.float32),
               "nsp_logits": jnp.asarray(rng.normal(size=(2, 2)), jnp.float32)}
    batch = {"mlm_targets": jnp.array([[1, 2, 3], [4, 5, 0]]),
             "mlm_weights": jnp.array([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]),
             "sop_labels": jnp.array([0, 1]), "order_labels": jnp.array([8, 3]),
             "nsp_labels": jnp.array([1, 0])}
    return outputs, batch


@pytest.mark.parametrize("name,classes", [("sop", 2), ("order", 9)])
def test_sentence_objective_by_hand(name, classes):
    outputs, batch = _tiny()
    terms, metrics = OBJECTIVES[name](outputs, batch)
    want = _ce(outputs[f"{name}_logits"], np.asarray(batch[f"{name}_labels"])).sum()
    np.testing.assert_allclose(terms[f"{name}_loss"][0], want, rtol=1e-6)
    assert float(terms[f"{name}_loss"][1]) == 2.0
    hits = (np.argmax(outputs[f"{name}_logits"], -1) == np.asarray(batch[f"{name}_labels"]))
    assert float(metrics[f"{name}_accuracy"][0]) == hits.sum()


def test_order_accuracy_per_segment_count():
    labels = jnp.array([0, 1, 2, 3, 8, 8])  # k = 1, 2, 2, 3, 3, 3
    logits = jax.nn.one_hot(jnp.array([0, 1, 1, 3, 8, 4]), 9)  # wrong on the 3rd and 6th
    _, metrics = OBJECTIVES["order"]({"order_logits": logits}, {"order_labels": labels})
    got = {k: (float(s), float(w)) for k, (s, w) in metrics.items() if "_k" in k}
    assert got == {"order_accuracy_k1": (1.0, 1.0), "order_accuracy_k2": (1.0, 2.0),
                   "order_accuracy_k3": (2.0, 3.0)}


def test_uniform_order_logits_cost_log_c():
    _, batch = _tiny()
    terms, _ = OBJECTIVES["order"]({"order_logits": jnp.zeros((2, 9))}, batch)
    np.testing.assert_allclose(terms["order_loss"][0] / 2, math.log(9), rtol=1e-6)


def test_weighted_total_is_the_weighted_sum_of_means():
    outputs, batch = _tiny()
    weights = {"mlm": 1.0, "sop": 0.7, "order": 0.5, "nsp": 0.0}
    terms, metrics = jax.jit(weighted(weights))(outputs, batch)
    assert set(terms) == {"mlm_loss", "sop_loss", "order_loss"}  # weight 0: left out
    mlm = (_ce(np.asarray(outputs["mlm_logits"]).reshape(6, 11),
               np.asarray(batch["mlm_targets"]).reshape(6)) * [1, 1, 1, 1, 1, 0]).sum() / 5
    sop = _ce(outputs["sop_logits"], np.asarray(batch["sop_labels"])).mean()
    order = _ce(outputs["order_logits"], np.asarray(batch["order_labels"])).mean()
    np.testing.assert_allclose(total_loss(terms), mlm + 0.7 * sop + 0.5 * order, rtol=1e-5)
    # Metrics are per objective and unweighted.
    np.testing.assert_allclose(metrics["sop_loss"][0] / metrics["sop_loss"][1], sop, rtol=1e-5)
    np.testing.assert_allclose(metrics["order_loss"][0] / metrics["order_loss"][1], order,
                               rtol=1e-5)
    assert {"mlm_accuracy", "sop_accuracy", "order_accuracy"} <= set(metrics)


def test_weighted_mlm_nsp_equals_bert_pretrain_exactly():
    outputs, batch = _tiny()
    a_terms, a_metrics = weighted({"mlm": 1.0, "nsp": 1.0})(outputs, batch)
    b_terms, b_metrics = bert_pretrain(outputs, batch)
    assert float(total_loss(a_terms)) == float(total_loss(b_terms))
    assert a_metrics.keys() == b_metrics.keys()


def test_weighted_rejects_bad_weights():
    with pytest.raises(KeyError, match="unknown"):
        weighted({"mlm": 1.0, "sentence_shuffle": 1.0})
    with pytest.raises(ValueError):
        weighted({"mlm": 0.0})
    with pytest.raises(ValueError):
        weighted({"mlm": 1.0, "sop": -1.0})
