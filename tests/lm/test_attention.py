"""Mask builders, the attention kernel against a NumPy reference, and small layers."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lm import attention, layers
from tests.lm.conftest import TINY, jit


def test_padding_mask_hides_pad_keys():
    mask = attention.padding_mask(jnp.array([[5, 6, 0, 0], [7, 0, 0, 0]]), pad_id=0)
    assert mask.shape == (2, 1, 1, 4) and mask.dtype == jnp.bool_
    np.testing.assert_array_equal(mask[:, 0, 0], [[1, 1, 0, 0], [1, 0, 0, 0]])


def test_causal_mask_is_lower_triangular():
    mask = attention.causal_mask(3)
    assert mask.shape == (1, 1, 3, 3)
    np.testing.assert_array_equal(mask[0, 0], [[1, 0, 0], [1, 1, 0], [1, 1, 1]])


def test_packing_mask_keeps_each_example_to_itself():
    mask = attention.packing_mask(jnp.array([[1, 1, 2, 0]]))
    assert mask.shape == (1, 1, 4, 4)
    np.testing.assert_array_equal(mask[0, 0], [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0],
                                               [0, 0, 0, 0]])


def test_fully_masked_row_stays_finite():
    q = jnp.ones((1, 2, 1, 4))
    bias = attention.mask_to_bias(jnp.zeros((1, 1, 2, 2), bool))
    bias = bias + attention.mask_to_bias(jnp.zeros((1, 1, 2, 2), bool))  # two masks combined
    out = attention.dot_product_attention(q, q, q, bias)
    assert bool(jnp.all(jnp.isfinite(out)))


def test_self_attention_matches_numpy_reference():
    cfg = TINY
    x = jax.random.normal(jax.random.key(0), (2, 5, cfg.hidden_size))
    mask = attention.AttentionMask(key_valid_BM=jnp.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]) != 0)
    bias = attention.mask_to_bias(attention.padding_mask(jnp.array([[1, 1, 1, 1, 1],
                                                                    [1, 1, 1, 0, 0]]), 0))
    np.testing.assert_array_equal(mask.bias(5, 5), bias)
    module = attention.SelfAttention(cfg)

    def init_and_apply(x, mask):
        params = nn.unbox(module.init(jax.random.key(1), x, mask, deterministic=True))["params"]
        return params, module.apply({"params": params}, x, mask, deterministic=True)

    params, got = jit(init_and_apply)(x, mask)

    p = jax.tree.map(np.asarray, params)
    xn = np.asarray(x, np.float64)
    q, k, v = (np.einsum("bld,hkd->blhk", xn, p[n]["kernel"]) + p[n]["bias"]
               for n in ("query", "key", "value"))
    scores = np.einsum("blhk,bmhk->bhlm", q, k) / np.sqrt(cfg.kv_dim) + np.asarray(bias)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    ctx = np.einsum("bhlm,bmhk->blhk", probs, v)
    want = np.einsum("blhk,dhk->bld", ctx, p["out"]["kernel"]) + p["out"]["bias"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_activation_lookup():
    x = jnp.linspace(-3, 3, 7)
    np.testing.assert_allclose(layers.activation("relu")(x), np.maximum(x, 0))
    exact, tanh = layers.activation("gelu")(x), layers.activation("gelu_tanh")(x)
    # erf's form (PyTorch's) against JAX's erfc one, value and slope: for x < -4, where GELU is
    # below 3e-5, 1 + erf cancels to an absolute error under 1e-6.
    wide = jnp.linspace(-12, 12, 4001)
    np.testing.assert_allclose(layers.gelu(wide), jax.nn.gelu(wide, approximate=False),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(exact, jax.nn.gelu(x, approximate=False), rtol=1e-5, atol=1e-6)
    erfc_slope = jax.vmap(jax.grad(lambda t: jax.nn.gelu(t, approximate=False)))(wide)
    np.testing.assert_allclose(jax.vmap(jax.grad(layers.gelu))(wide), erfc_slope, rtol=1e-5,
                               atol=1e-6)
    assert not np.allclose(exact, tanh, rtol=0, atol=1e-6)
    with pytest.raises(KeyError, match="known"):
        layers.activation("swish")


def test_embed_attend_is_matmul_with_table_transpose():
    table = layers.Embed(11, 8, ("vocab", "embed"), TINY)
    ids = jnp.array([[1, 2, 10]])
    x = jax.random.normal(jax.random.key(1), (2, 3, 8))

    def run(ids, x):
        variables = nn.unbox(table.init(jax.random.key(0), ids))
        return (variables["params"]["embedding"], table.apply(variables, ids),
                table.apply(variables, x, method=layers.Embed.attend))

    emb, rows, scores = map(np.asarray, jit(run)(ids, x))
    assert scores.shape == (2, 3, 11) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, np.asarray(x) @ emb.T, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(rows, emb[np.asarray(ids)])
