"""The BERT pretraining model as a whole: outputs, the tied MLM head, the registry, gradients."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lm.bert import BertForPretraining
from lm.models import ARCHITECTURES, make_model
from tests.lm.conftest import TINY, B, P, forward, init_params, loss_and_grads, make_batch

KEY = jax.random.key(0)


def test_outputs_have_documented_shapes_and_dtypes():
    out = forward(TINY)(init_params(TINY), make_batch(), KEY)
    assert set(out) == {"mlm_logits", "nsp_logits"}
    assert out["mlm_logits"].shape == (B, P, TINY.vocab_size)
    assert out["nsp_logits"].shape == (B, 2)
    assert all(x.dtype == jnp.float32 for x in out.values())


def test_mlm_logits_come_from_the_tied_token_embedding():
    params, batch = init_params(TINY), make_batch()
    assert set(params) == {"encoder", "mlm_head", "nsp_head"}
    head_params = jax.tree_util.tree_flatten_with_path(params["mlm_head"])[0]
    assert not any(x.ndim == 2 and x.shape[-1] == TINY.vocab_size for _, x in head_params)

    table = params["encoder"]["embeddings"]["token_embed"]["embedding"]
    # Change only rows no input token uses: the encoder cannot see it, so any logit change
    # must come through the tied output projection, and only for those rows.
    unused = np.setdiff1d(np.arange(TINY.vocab_size), np.asarray(batch["token_ids"]))
    edited = jax.tree.map(lambda x: x, params)
    edited["encoder"]["embeddings"]["token_embed"]["embedding"] = table.at[unused].add(0.5)
    run = forward(TINY)
    before, after = run(params, batch, KEY)["mlm_logits"], run(edited, batch, KEY)["mlm_logits"]
    changed = np.any(np.asarray(before != after), axis=(0, 1))
    np.testing.assert_array_equal(np.flatnonzero(changed), unused)


def test_mlm_head_gathers_only_the_predicted_positions():
    params, batch = init_params(TINY), make_batch()
    run = forward(TINY)
    swapped = dict(batch, mlm_positions=batch["mlm_positions"][:, ::-1])
    np.testing.assert_allclose(run(params, swapped, KEY)["mlm_logits"],
                               run(params, batch, KEY)["mlm_logits"][:, ::-1], rtol=1e-6)


def test_make_model_registry():
    assert ARCHITECTURES["bert"] is BertForPretraining
    assert isinstance(make_model("bert", TINY), BertForPretraining)
    with pytest.raises(KeyError, match="known: \\[.*'bert'"):
        make_model("gpt5", TINY)


def test_init_returns_boxed_params_and_apply_trains():
    model, batch = make_model("bert", TINY), make_batch()
    variables = jax.eval_shape(
        lambda: model.init({"params": KEY, "dropout": KEY}, batch, deterministic=True))
    assert set(variables) == {"params"}
    leaves = jax.tree.leaves(variables["params"],
                             is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))
    assert all(isinstance(x, nn.LogicallyPartitioned) for x in leaves)


def test_loss_gradient_reaches_the_token_embedding():
    (loss, _), grads = loss_and_grads(TINY)(init_params(TINY), make_batch())
    # Untrained: mean MLM loss ≈ log V, mean NSP loss ≈ log 2.
    np.testing.assert_allclose(loss, np.log(TINY.vocab_size) + np.log(2), rtol=0.1)
    grad = grads["encoder"]["embeddings"]["token_embed"]["embedding"]
    assert np.isfinite(grad).all() and np.abs(grad).max() > 0
    assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))
