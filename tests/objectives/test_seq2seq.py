"""The encoder–decoder objective: golden values, the weights mask, z-loss, and T5's logits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data import features
from objectives import OBJECTIVES, seq2seq, total_loss


def test_uniform_logits_give_log_v_and_weights_select_targets():
    v = 13
    batch = {"decoder_target_ids": jnp.asarray([[5, 6, 0], [7, 0, 0]]),
             "decoder_weights": jnp.asarray([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])}
    terms, metrics = seq2seq({"logits": jnp.zeros((2, 3, v))}, batch)
    assert float(terms["seq2seq_loss"][1]) == 3.0
    assert float(total_loss(terms)) == pytest.approx(np.log(v), rel=1e-6)
    assert set(metrics) == {"seq2seq_loss", "seq2seq_accuracy"}


def test_hand_computed_loss_ignores_padding_and_adds_z_loss():
    logits = jnp.asarray([[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    batch = {"decoder_target_ids": jnp.asarray([[0, 2]]),
             "decoder_weights": jnp.asarray([[1.0, 0.0]])}
    log_z = np.log(np.exp(2.0) + 2.0)
    terms, metrics = seq2seq({"logits": logits}, batch, z_loss=1e-2)
    assert float(metrics["seq2seq_loss"][0]) == pytest.approx(log_z - 2.0, rel=1e-6)
    assert float(terms["seq2seq_loss"][0]) == pytest.approx(log_z - 2.0 + 1e-2 * log_z ** 2,
                                                            rel=1e-6)
    assert float(metrics["seq2seq_z_loss"][0]) == pytest.approx(1e-2 * log_z ** 2, rel=1e-6)
    assert float(metrics["seq2seq_accuracy"][0]) == 1.0  # argmax 0 = target, padding unscored
    edited = logits.at[0, 1].add(jnp.asarray([50.0, -50.0, 0.0]))
    assert float(seq2seq({"logits": edited}, batch)[0]["seq2seq_loss"][0]) == pytest.approx(
        log_z - 2.0, rel=1e-6)


def test_the_record_reads_the_schema_keys_and_t5_starts_near_log_v():
    from lm.models import make_model
    from tests.lm.test_t5 import T5_TINY, V, t5_batch
    spec = OBJECTIVES["seq2seq"]
    schema = features.schema("seq2seq")
    assert set(spec.batch_keys) <= set(schema) and spec.outputs == ("logits",)
    assert {k: d for k, (d, _) in schema.items()} == {
        "encoder_input_ids": ("B", "S"), "encoder_segment_ids": ("B", "S"),
        "decoder_input_ids": ("B", "T"), "decoder_target_ids": ("B", "T"),
        "decoder_segment_ids": ("B", "T"), "decoder_weights": ("B", "T"),
        "encoder_positions": ("B", "S"), "decoder_positions": ("B", "T")}
    model, batch = make_model("t5", T5_TINY), t5_batch()
    variables = model.init(jax.random.key(0), batch)
    terms, _ = spec.loss(model.apply(variables, batch), batch)
    assert float(total_loss(terms)) == pytest.approx(np.log(V), rel=0.05)
