"""Golden values of the weighted losses and metrics, and the objectives built on them."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from objectives import OBJECTIVES, losses, total_loss, weighted
from objectives.mlm import mlm as _mlm
from objectives.sentence import nsp as _nsp

V = 7

# One compiled program per call shape is far cheaper than compiling every primitive eagerly.
weighted_cross_entropy = jax.jit(losses.weighted_cross_entropy,
                                 static_argnames=("label_smoothing", "z_loss"))
weighted_accuracy = jax.jit(losses.weighted_accuracy)
mlm = jax.jit(_mlm, static_argnames=("label_smoothing", "z_loss"))
nsp = jax.jit(_nsp)
# BERT's objectives (launch/configs/bert.py).
mlm_nsp_jit = jax.jit(weighted({"mlm": 1.0, "nsp": 1.0}),
                           static_argnames=("label_smoothing", "z_loss"))


def test_uniform_logits_cost_log_v_per_weighted_position():
    logits = jnp.zeros((2, 3, V))
    targets = jnp.array([[0, 3, 6], [1, 2, 5]])
    weights = jnp.array([[1.0, 1.0, 0.0], [1.0, 0.5, 1.0]])
    loss_sum, z_sum, weight_sum = weighted_cross_entropy(logits, targets, weights)
    assert float(weight_sum) == 4.5 and float(z_sum) == 0.0
    np.testing.assert_allclose(loss_sum, 4.5 * math.log(V), rtol=1e-6)


def test_cross_entropy_by_hand():
    logits = jnp.array([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    targets = jnp.array([0, 1])
    log_z = np.log(np.exp(np.asarray(logits)).sum(-1))
    want = (log_z[0] - 2.0) + 2.0 * (log_z[1] - 0.5)
    loss_sum, _, _ = weighted_cross_entropy(logits, targets, jnp.array([1.0, 2.0]))
    np.testing.assert_allclose(loss_sum, want, rtol=1e-6)


def test_z_loss_adds_coefficient_times_squared_log_normaliser():
    logits = jnp.array([[1.0, 2.0, 3.0]])
    targets, weights = jnp.array([2]), jnp.array([2.0])
    log_z = math.log(math.e + math.e ** 2 + math.e ** 3)
    plain, _, _ = weighted_cross_entropy(logits, targets, weights)
    loss_sum, z_sum, _ = weighted_cross_entropy(logits, targets, weights, z_loss=1e-2)
    np.testing.assert_allclose(z_sum, 2.0 * 1e-2 * log_z ** 2, rtol=1e-6)
    np.testing.assert_allclose(loss_sum, plain + z_sum, rtol=1e-6)


def test_label_smoothing_minimum_is_zero_at_the_smoothed_target():
    smoothing = 0.1
    soft = np.full(V, smoothing / (V - 1))
    soft[3] = 1 - smoothing
    logits = jnp.asarray(np.log(soft))[None]
    loss_sum, _, _ = weighted_cross_entropy(logits, jnp.array([3]), jnp.ones(1),
                                            label_smoothing=smoothing)
    np.testing.assert_allclose(loss_sum, 0.0, atol=1e-5)
    worse, _, _ = weighted_cross_entropy(logits * 2, jnp.array([3]), jnp.ones(1),
                                         label_smoothing=smoothing)
    assert float(worse) > 1e-3


def test_label_smoothing_by_hand():
    logits = jnp.array([[0.3, -1.0, 2.0]])
    smoothing = 0.2
    log_p = np.asarray(logits[0]) - np.log(np.exp(np.asarray(logits[0])).sum())
    soft = np.array([0.1, 0.1, 0.8])
    want = -(soft * log_p).sum() + (soft * np.log(soft)).sum()
    loss_sum, _, _ = weighted_cross_entropy(logits, jnp.array([2]), jnp.ones(1),
                                            label_smoothing=smoothing)
    np.testing.assert_allclose(loss_sum, want, rtol=1e-5)


def test_weighted_accuracy_counts_weighted_argmax_hits():
    logits = jnp.array([[0.0, 1.0], [2.0, 0.0], [0.0, 3.0], [5.0, 1.0]])
    correct, weight = weighted_accuracy(logits, jnp.array([1, 1, 1, 0]),
                                        jnp.array([1.0, 1.0, 0.5, 0.0]))
    assert float(correct) == 1.5 and float(weight) == 2.5


def test_losses_are_float32_for_bfloat16_logits():
    logits = jnp.zeros((4, V), jnp.bfloat16)
    loss_sum, z_sum, weight_sum = weighted_cross_entropy(logits, jnp.zeros(4, jnp.int32),
                                                         jnp.ones(4), z_loss=1e-4)
    assert loss_sum.dtype == z_sum.dtype == weight_sum.dtype == jnp.float32
    np.testing.assert_allclose(loss_sum - z_sum, 4 * math.log(V), rtol=1e-6)


def _outputs_and_batch():
    outputs = {"mlm_logits": jnp.zeros((2, 3, V)), "nsp_logits": jnp.array([[2.0, 0.0],
                                                                            [1.0, 0.0]])}
    batch = {"mlm_targets": jnp.array([[1, 2, 3], [4, 5, 0]]),
             "mlm_weights": jnp.array([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]),
             "nsp_labels": jnp.array([0, 1])}
    return outputs, batch


def test_mlm_and_nsp_terms_and_metrics():
    outputs, batch = _outputs_and_batch()
    terms, metrics = mlm(outputs, batch)
    assert set(terms) == {"mlm_loss"} and set(metrics) == {"mlm_loss", "mlm_accuracy"}
    np.testing.assert_allclose(terms["mlm_loss"], (5 * math.log(V), 5.0), rtol=1e-6)
    terms, metrics = nsp(outputs, batch)
    assert set(terms) == {"nsp_loss"} and set(metrics) == {"nsp_loss", "nsp_accuracy"}
    np.testing.assert_allclose(metrics["nsp_accuracy"], (1.0, 2.0))
    want = math.log(1 + math.exp(-2.0)) + math.log(1 + math.exp(1.0))
    np.testing.assert_allclose(terms["nsp_loss"], (want, 2.0), rtol=1e-6)


def test_loss_metric_stays_plain_cross_entropy_when_the_optimised_loss_is_not():
    outputs, batch = _outputs_and_batch()
    terms, metrics = mlm(outputs, batch, label_smoothing=0.1, z_loss=1e-3)
    np.testing.assert_allclose(metrics["mlm_loss"], (5 * math.log(V), 5.0), rtol=1e-6)
    assert "mlm_z_loss" in metrics
    assert float(terms["mlm_loss"][0]) != pytest.approx(float(metrics["mlm_loss"][0]))


def test_mlm_plus_nsp_merges_and_total_loss_is_sum_of_means():
    outputs, batch = _outputs_and_batch()
    assert OBJECTIVES["mlm"].loss is _mlm and OBJECTIVES["nsp"].loss is _nsp
    terms, metrics = mlm_nsp_jit(outputs, batch)
    assert set(terms) == {"mlm_loss", "nsp_loss"}
    assert set(metrics) == {"mlm_loss", "mlm_accuracy", "nsp_loss", "nsp_accuracy"}
    want = math.log(V) + (math.log(1 + math.exp(-2.0)) + math.log(1 + math.exp(1.0))) / 2
    np.testing.assert_allclose(total_loss(terms), want, rtol=1e-6)


def test_a_term_without_weight_contributes_zero():
    outputs, batch = _outputs_and_batch()
    batch["mlm_weights"] = jnp.zeros((2, 3))
    terms, _ = mlm_nsp_jit(outputs, batch, label_smoothing=0.1, z_loss=1e-3)
    assert float(terms["mlm_loss"][1]) == 0.0
    np.testing.assert_allclose(total_loss(terms), total_loss({"nsp_loss": terms["nsp_loss"]}))
    assert float(total_loss({})) == 0.0


def _plain_cross_entropy(logits, targets, weights, label_smoothing, z_loss):
    """The textbook loss on a dense smoothed one-hot target, differentiated by JAX as it is."""
    v = logits.shape[-1]
    log_z = jax.nn.logsumexp(logits, axis=-1)
    log_p = logits - log_z[..., None]
    one_hot = jax.nn.one_hot(targets, v)
    soft = one_hot * (1 - label_smoothing) + (1 - one_hot) * label_smoothing / (v - 1)
    entropy = -jnp.sum(jnp.where(soft > 0, soft * jnp.log(jnp.where(soft > 0, soft, 1)), 0), -1)
    loss = -jnp.sum(soft * log_p, -1) - entropy + z_loss * log_z ** 2
    return jnp.sum(loss * weights)


@pytest.mark.parametrize("label_smoothing,z_loss", [(0.0, 0.0), (0.1, 0.0), (0.0, 1e-3),
                                                    (0.2, 1e-2)])
def test_fused_cross_entropy_gradient_equals_autodiff_of_the_plain_loss(label_smoothing, z_loss):
    rng = np.random.default_rng(3)
    logits = jnp.asarray(rng.normal(size=(3, 5, 11)) * 4, jnp.float32)
    targets = jnp.asarray(rng.integers(0, 11, size=(3, 5)), jnp.int32)
    weights = jnp.asarray(rng.integers(0, 3, size=(3, 5)), jnp.float32)

    def fused(x):
        return losses.weighted_cross_entropy(x, targets, weights, label_smoothing=label_smoothing,
                                             z_loss=z_loss)[0]

    def plain(x):
        return _plain_cross_entropy(x, targets, weights, label_smoothing, z_loss)

    def row_gradients(x):  # d(log Z - true logit) per row, through vmap
        def one(row, target):
            log_z, true = losses.log_z_and_true_logit(row, target)
            return jnp.sum(log_z - true)
        return jax.vmap(jax.grad(one))(x.reshape(-1, 11), targets.reshape(-1))

    # One compiled program for all of it (the train step jits the loss; eager is slow).
    got = jax.jit(lambda x: (fused(x), plain(x), jax.grad(fused)(x), jax.grad(plain)(x),
                             row_gradients(x)))(logits)
    np.testing.assert_allclose(got[0], got[1], rtol=1e-5)
    np.testing.assert_allclose(got[2], got[3], rtol=1e-4, atol=1e-6)
    want_rows = jax.nn.softmax(logits) - jax.nn.one_hot(targets, 11)
    np.testing.assert_allclose(got[4], want_rows.reshape(-1, 11), rtol=1e-4, atol=1e-6)
