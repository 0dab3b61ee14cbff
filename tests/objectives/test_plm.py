"""The permutation-LM objective: golden values on uniform and one-hot logits."""

import math

import jax.numpy as jnp
import numpy as np

from objectives import OBJECTIVES, total_loss


def test_uniform_logits_cost_log_v_and_unused_slots_do_not_count():
    b, p, v = 2, 3, 11
    batch = {"plm_targets": jnp.asarray([[1, 2, 3], [4, 5, 0]], jnp.int32),
             "plm_weights": jnp.asarray([[1, 1, 1], [1, 1, 0]], jnp.float32)}
    terms, metrics = OBJECTIVES["plm"].loss({"plm_logits": jnp.zeros((b, p, v))}, batch)
    assert float(terms["plm_loss"][1]) == 5.0
    np.testing.assert_allclose(float(total_loss(terms)), math.log(v), rtol=1e-6)
    sure = 100.0 * jnp.eye(v)[batch["plm_targets"]]
    _, metrics = OBJECTIVES["plm"].loss({"plm_logits": sure}, batch)
    acc_sum, acc_weight = metrics["plm_accuracy"]
    assert float(acc_sum) == float(acc_weight) == 5.0
