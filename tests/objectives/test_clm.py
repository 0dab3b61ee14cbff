"""The causal-LM objective: golden values and weighting."""

import jax.numpy as jnp
import numpy as np
import pytest

from objectives import OBJECTIVES, total_loss


def test_uniform_logits_give_log_v_and_weights_select_positions():
    v = 11
    batch = {"clm_targets": jnp.asarray([[1, 2, 0], [3, 4, 0]]),
             "clm_weights": jnp.asarray([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])}
    terms, metrics = OBJECTIVES["clm"].loss({"logits": jnp.zeros((2, 3, v))}, batch)
    loss_sum, weight = terms["clm_loss"]
    assert float(weight) == 3.0
    assert float(total_loss(terms)) == pytest.approx(np.log(v), rel=1e-6)
    assert float(metrics["clm_loss"][0]) == pytest.approx(3 * np.log(v), rel=1e-6)


def test_masked_positions_do_not_change_the_loss():
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=(2, 4, 7)), jnp.float32)
    batch = {"clm_targets": jnp.asarray(rng.integers(0, 7, (2, 4))),
             "clm_weights": jnp.asarray([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])}
    edited = logits.at[0, 3].add(100.0).at[1, 2:].add(-50.0)
    a = OBJECTIVES["clm"].loss({"logits": logits}, batch)
    b = OBJECTIVES["clm"].loss({"logits": edited}, batch)
    for name in ("clm_loss", "clm_accuracy"):
        assert float(a[1][name][0]) == pytest.approx(float(b[1][name][0]), rel=1e-6)
    hits = np.argmax(np.asarray(logits), -1) == np.asarray(batch["clm_targets"])
    assert float(a[1]["clm_accuracy"][0]) == (hits * np.asarray(batch["clm_weights"])).sum()
