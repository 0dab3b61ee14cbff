"""Sentence-order objectives and the weighted combination of objectives."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data import features
from objectives import OBJECTIVES, losses, mlm, nsp, sentence, total_loss, weighted


def _ce(logits, labels):
    logits = np.asarray(logits, np.float64)
    log_z = np.log(np.exp(logits).sum(-1))
    return log_z - logits[np.arange(len(labels)), labels]


def _token_ids(segment_counts, length=12):
    """[CLS] then k segments of two tokens, each ended by [SEP], padded: k per row."""
    rows = np.zeros((len(segment_counts), length), np.int32)
    for row, k in zip(rows, segment_counts, strict=True):
        row[:1 + 3 * k] = [features.CLS_ID] + [7, 8, features.SEP_ID] * k
    return jnp.asarray(rows)


def _order_ce(logits, labels, segment_counts):
    """Cross-entropy over each row's k! classes only (the order objective's restriction)."""
    ends = np.cumsum([math.factorial(k) for k in range(1, 4)])
    out = []
    for row, label, k in zip(np.asarray(logits, np.float64), labels, segment_counts, strict=True):
        lo, hi = ends[k - 2] if k > 1 else 0, ends[k - 1]
        out.append(_ce(row[None, lo:hi], [label - lo])[0])
    return np.asarray(out)


def _options(name):
    """The options an objective's record declares (order: the [SEP] id)."""
    return {"sep_id": features.SEP_ID} if "sep_id" in OBJECTIVES[name].options else {}


def _order(outputs, batch):
    return OBJECTIVES["order"].loss(outputs, batch, sep_id=features.SEP_ID)


def _tiny():
    rng = np.random.default_rng(0)
    outputs = {"mlm_logits": jnp.asarray(rng.normal(size=(2, 3, 11)), jnp.float32),
               "sop_logits": jnp.asarray(rng.normal(size=(2, 2)), jnp.float32),
               "order_logits": jnp.asarray(rng.normal(size=(2, 9)), jnp.float32),
               "nsp_logits": jnp.asarray(rng.normal(size=(2, 2)), jnp.float32)}
    batch = {"mlm_targets": jnp.array([[1, 2, 3], [4, 5, 0]]),
             "mlm_weights": jnp.array([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]),
             "sop_labels": jnp.array([0, 1]), "order_labels": jnp.array([8, 3]),
             "nsp_labels": jnp.array([1, 0]), "token_ids": _token_ids([3, 3])}
    return outputs, batch


@pytest.mark.parametrize("name,classes", [("sop", 2), ("order", 9)])
def test_sentence_objective_by_hand(name, classes):
    outputs, batch = _tiny()
    terms, metrics = OBJECTIVES[name].loss(outputs, batch, **_options(name))
    logits, labels = outputs[f"{name}_logits"], np.asarray(batch[f"{name}_labels"])
    if name == "order":  # both rows have 3 segments: classes 3..8 only
        want = _order_ce(logits, labels, [3, 3]).sum()
        hits = np.argmax(np.asarray(logits)[:, 3:], -1) + 3 == labels
    else:
        want = _ce(logits, labels).sum()
        hits = np.argmax(logits, -1) == labels
    np.testing.assert_allclose(terms[f"{name}_loss"][0], want, rtol=1e-6)
    assert float(terms[f"{name}_loss"][1]) == 2.0
    assert float(metrics[f"{name}_accuracy"][0]) == hits.sum()


def test_order_accuracy_per_segment_count():
    labels = jnp.array([0, 1, 2, 3, 8, 8])  # k = 1, 2, 2, 3, 3, 3
    logits = jax.nn.one_hot(jnp.array([0, 1, 1, 3, 8, 4]), 9)  # wrong on the 3rd and 6th
    batch = {"order_labels": labels, "token_ids": _token_ids([1, 2, 2, 3, 3, 3])}
    _, metrics = _order({"order_logits": logits}, batch)
    got = {k: (float(s), float(w)) for k, (s, w) in metrics.items() if "_k" in k}
    assert got == {"order_accuracy_k1": (1.0, 1.0), "order_accuracy_k2": (1.0, 2.0),
                   "order_accuracy_k3": (2.0, 3.0)}


def test_order_classes_come_from_the_segment_count_in_the_input():
    valid = np.asarray(sentence.segment_count_classes(_token_ids([1, 2, 3]), 9, features.SEP_ID))
    np.testing.assert_array_equal(valid, [[1, 0, 0, 0, 0, 0, 0, 0, 0],
                                          [0, 1, 1, 0, 0, 0, 0, 0, 0],
                                          [0, 0, 0, 1, 1, 1, 1, 1, 1]])
    # The argmax is taken among those classes: a 2-segment instance whose overall argmax is a
    # 3-segment class is scored by its best 2-segment class.
    logits = jnp.asarray([[0.0, 1.0, 0.5, 9.0, 0, 0, 0, 0, 0]])
    batch = {"order_labels": jnp.array([1]), "token_ids": _token_ids([2])}
    terms, metrics = _order({"order_logits": logits}, batch)
    assert float(metrics["order_accuracy"][0]) == 1.0
    np.testing.assert_allclose(terms["order_loss"][0], _ce([[1.0, 0.5]], [0])[0], rtol=1e-6)
    with pytest.raises(ValueError, match="not 1! \\+ 2!"):
        sentence.segment_count_classes(_token_ids([1]), 5, features.SEP_ID)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_restricted_cross_entropy_is_the_cross_entropy_of_the_valid_slice(smoothing):
    rng = np.random.default_rng(1)
    logits = jnp.asarray(rng.normal(size=(3, 9)), jnp.float32)
    valid = sentence.segment_count_classes(_token_ids([1, 2, 3]), 9, features.SEP_ID)
    labels = jnp.array([0, 2, 6])
    got, _, _ = losses.weighted_cross_entropy(logits, labels, jnp.ones(3),
                                              label_smoothing=smoothing, z_loss=1e-3,
                                              valid=valid)
    # One segment: nothing to predict, nothing to pay (smoothing has no other class to spread to)
    want = 1e-3 * float(logits[0, 0]) ** 2
    for row, lo, hi in ((1, 1, 3), (2, 3, 9)):
        want += float(losses.weighted_cross_entropy(
            logits[row:row + 1, lo:hi], labels[row:row + 1] - lo, jnp.ones(1),
            label_smoothing=smoothing, z_loss=1e-3)[0])
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_uniform_order_logits_cost_log_k_factorial():
    _, batch = _tiny()
    terms, _ = _order({"order_logits": jnp.zeros((2, 9))}, batch)
    np.testing.assert_allclose(terms["order_loss"][0] / 2, math.log(6), rtol=1e-6)  # 3! classes


def test_weighted_total_is_the_weighted_sum_of_means():
    outputs, batch = _tiny()
    weights = {"mlm": 1.0, "sop": 0.7, "order": 0.5, "nsp": 0.0}
    terms, metrics = jax.jit(weighted(weights, sep_id=features.SEP_ID))(outputs, batch)
    assert set(terms) == {"mlm_loss", "sop_loss", "order_loss"}  # weight 0: left out
    mlm = (_ce(np.asarray(outputs["mlm_logits"]).reshape(6, 11),
               np.asarray(batch["mlm_targets"]).reshape(6)) * [1, 1, 1, 1, 1, 0]).sum() / 5
    sop = _ce(outputs["sop_logits"], np.asarray(batch["sop_labels"])).mean()
    order = _order_ce(outputs["order_logits"], np.asarray(batch["order_labels"]), [3, 3]).mean()
    np.testing.assert_allclose(total_loss(terms), mlm + 0.7 * sop + 0.5 * order, rtol=1e-5)
    # Metrics are per objective and unweighted.
    np.testing.assert_allclose(metrics["sop_loss"][0] / metrics["sop_loss"][1], sop, rtol=1e-5)
    np.testing.assert_allclose(metrics["order_loss"][0] / metrics["order_loss"][1], order,
                               rtol=1e-5)
    assert {"mlm_accuracy", "sop_accuracy", "order_accuracy"} <= set(metrics)


def test_weighted_mlm_nsp_equals_the_merged_mlm_and_nsp_exactly():
    """BERT's {"mlm": 1, "nsp": 1} is what the former ``bert_pretrain`` computed: MLM's terms
    then NSP's, merged, to the bit."""
    outputs, batch = _tiny()
    a_terms, a_metrics = weighted({"mlm": 1.0, "nsp": 1.0})(outputs, batch)
    (mlm_terms, mlm_metrics), (nsp_terms, nsp_metrics) = mlm(outputs, batch), nsp(outputs, batch)
    b_terms, b_metrics = {**mlm_terms, **nsp_terms}, {**mlm_metrics, **nsp_metrics}
    assert list(a_terms) == list(b_terms) == ["mlm_loss", "nsp_loss"]
    assert float(total_loss(a_terms)) == float(total_loss(b_terms))
    assert a_metrics.keys() == b_metrics.keys()


def test_weighted_rejects_bad_weights():
    with pytest.raises(ValueError, match="unknown"):
        weighted({"mlm": 1.0, "sentence_shuffle": 1.0})
    with pytest.raises(ValueError):
        weighted({"mlm": 0.0})
    with pytest.raises(ValueError):
        weighted({"mlm": 1.0, "sop": -1.0})
