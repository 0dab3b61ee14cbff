"""XLNet: what each stream may see (by gradient), identity-order masks, relative-position shifts,
and the logical axes of every parameter."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lm import attention, axes
from lm import relative_attention as rel
from lm.config import TransformerConfig
from lm.models import make_finetune_model, make_model
from tests.lm.conftest import jit

CFG = TransformerConfig(vocab_size=64, hidden_size=16, num_layers=2, num_heads=2, mlp_dim=32,
                        dropout_rate=0.0, attention_dropout_rate=0.0)
B, L = 2, 8
MODEL = make_model("xlnet", CFG)


def order_batch(order_BL: np.ndarray, targets_BP: np.ndarray, seed: int = 0) -> dict:
    """A plm batch for the given factorisation orders; every token id distinct within a row."""
    rng = np.random.default_rng(seed)
    b, length = order_BL.shape
    token_ids = np.stack([rng.permutation(np.arange(7, CFG.vocab_size))[:length]
                          for _ in range(b)])
    can_attend = order_BL[:, None, :] <= order_BL[:, :, None]  # [B, i, j]: j not later than i
    mapping = np.zeros((b, targets_BP.shape[1], length), np.float32)
    for row in range(b):
        mapping[row, np.arange(targets_BP.shape[1]), targets_BP[row]] = 1.0
    type_ids = np.zeros((b, length), np.int32)
    type_ids[:, length // 2:] = 1
    return {"token_ids": jnp.asarray(token_ids, jnp.int32), "type_ids": jnp.asarray(type_ids),
            "can_attend": jnp.asarray(can_attend), "plm_target_mapping": jnp.asarray(mapping)}


@functools.cache
def params():
    order = np.tile(np.arange(L), (B, 1))
    init = jit(lambda b: MODEL.init({"params": jax.random.key(0)}, b))
    return nn.unbox(init(order_batch(order, order[:, :2]))["params"])


@functools.cache
def token_jacobians():
    """|d(stream state · w)/d(token table)|, [B, P|L, V], for a fixed random w [D]."""
    def states(table, p, batch):
        p = {**p, "encoder": {**p["encoder"], "word_embedding": {"embedding": table}}}
        out = MODEL.apply({"params": p}, batch)
        # A random direction: a plain sum over D after LayerNorm is constant.
        w_D = jax.random.normal(jax.random.key(5), (CFG.hidden_size,))
        return out["query_states"] @ w_D, out["content_states"] @ w_D

    def norms(p, batch):
        table = p["encoder"]["word_embedding"]["embedding"]
        jac_q, jac_h = jax.jacrev(states)(table, p, batch)
        return jnp.abs(jac_q).sum(-1), jnp.abs(jac_h).sum(-1)
    return functools.partial(jit(norms), params())


def _random_orders(seed: int):
    rng = np.random.default_rng(seed)
    order = np.stack([rng.permutation(L) for _ in range(B)])
    return order, np.tile(np.arange(L), (B, 1))


def _dependence(jac_BXV, batch):
    """[B, X, L]: |d state / d token at position j|."""
    return np.take_along_axis(np.asarray(jac_BXV), np.asarray(batch["token_ids"])[:, None, :],
                              axis=2)


def test_query_stream_depends_only_on_tokens_earlier_in_the_order():
    order, targets = _random_orders(1)
    batch = order_batch(order, targets)
    jac_q, _ = token_jacobians()(batch)
    dep = _dependence(jac_q, batch)  # predicted slot p = position p here
    earlier = order[:, None, :] < order[:, :, None]
    # The first in the order sees nothing (XLNet always has context before the targets); its
    # fully masked row is uniform, as in XLNet, so it is left out.
    checked = np.broadcast_to((order > 0)[:, :, None], earlier.shape)
    assert np.all(dep[checked & ~earlier] == 0.0)  # itself and everything later: exactly zero
    assert np.all(dep[checked & earlier] > 0.0)


def test_content_stream_sees_itself_and_earlier_not_later():
    order, targets = _random_orders(2)
    batch = order_batch(order, targets)
    _, jac_h = token_jacobians()(batch)
    dep = _dependence(jac_h, batch)
    not_later = order[:, None, :] <= order[:, :, None]
    assert np.all(dep[~not_later] == 0.0)
    assert np.all(dep[not_later] > 0.0)


def test_identity_order_gives_left_to_right_masks():
    order = np.tile(np.arange(L), (B, 1))
    batch = order_batch(order, order)
    content, query = rel.stream_masks(batch["can_attend"], jnp.ones((B, L), bool), 0)
    causal = attention.causal_mask(L)
    np.testing.assert_array_equal(content, jnp.broadcast_to(causal, content.shape))
    strict = causal & ~jnp.eye(L, dtype=bool)
    np.testing.assert_array_equal(query, jnp.broadcast_to(strict, query.shape))


def test_relative_shift_indexes_distance_i_minus_j():
    mem, length = 3, 4
    d_R = rel.relative_distances(length, mem + length)
    x = jnp.broadcast_to(d_R, (1, 1, length, d_R.shape[0]))
    got = rel.relative_shift(x, mem + length)[0, 0]
    want = (mem + jnp.arange(length))[:, None] - jnp.arange(mem + length)[None, :]
    np.testing.assert_array_equal(got, want)


def test_left_padding_shifts_positions_but_not_outputs():
    order, _ = _random_orders(3)
    targets = np.argsort(order)[:, -3:]  # the last 3 in the order
    batch = order_batch(order, targets)
    pad = 3
    padded = {
        "token_ids": jnp.pad(batch["token_ids"], ((0, 0), (pad, 0))),
        "type_ids": jnp.pad(batch["type_ids"], ((0, 0), (pad, 0))),
        "can_attend": jnp.pad(batch["can_attend"], ((0, 0), (pad, 0), (pad, 0))),
        "plm_target_mapping": jnp.pad(batch["plm_target_mapping"], ((0, 0), (0, 0), (pad, 0))),
    }
    apply = functools.partial(jit(lambda p, b: MODEL.apply({"params": p}, b)), params())
    a, b = apply(batch), apply(padded)
    np.testing.assert_allclose(b["content_states"][:, pad:], a["content_states"], atol=1e-5)
    np.testing.assert_allclose(b["plm_logits"], a["plm_logits"], atol=1e-5)


def test_memory_gives_the_outputs_of_one_long_segment():
    """A second segment read with the first as memory (positions shifted by L) equals the second
    half of one 2L-long pass in which the first half cannot see the second."""
    rng = np.random.default_rng(4)
    tokens = jnp.asarray(rng.integers(7, CFG.vocab_size, (B, 2 * L)), jnp.int32)
    first_half = jnp.arange(2 * L) < L
    can_attend = ~(first_half[:, None] & ~first_half[None, :])
    apply = functools.partial(
        jit(lambda p, b, m: MODEL.apply({"params": p}, b, mems=m)), params())
    mask = jnp.broadcast_to(can_attend, (B, 2 * L, 2 * L))
    full = apply({"token_ids": tokens, "can_attend": mask,
                  "plm_target_mapping": jnp.zeros((B, 1, 2 * L))}, None)
    one = apply({"token_ids": tokens[:, :L], "plm_target_mapping": jnp.zeros((B, 1, L))}, None)
    two = apply({"token_ids": tokens[:, L:], "plm_target_mapping": jnp.zeros((B, 1, L))},
                one["new_mems"])
    np.testing.assert_allclose(two["content_states"], full["content_states"][:, L:], atol=1e-5)
    np.testing.assert_allclose(one["content_states"], full["content_states"][:, :L], atol=1e-5)


@pytest.mark.parametrize("remat", ["none", "full"])
def test_every_param_is_named_with_known_axes(remat):
    model = make_model("xlnet", CFG.replace(remat=remat))
    order = np.tile(np.arange(L), (B, 1))
    boxed = jax.eval_shape(lambda: model.init({"params": jax.random.key(0)},
                                              order_batch(order, order[:, :2])))["params"]
    leaves = jax.tree_util.tree_flatten_with_path(
        boxed, is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))[0]
    assert len(leaves) == 3 + 2 * 17
    for path, leaf in leaves:
        assert isinstance(leaf, nn.LogicallyPartitioned), f"{path} has no logical axes"
        assert len(leaf.names) == leaf.value.ndim, path
        assert all(n in axes.ALL_AXES for n in leaf.names), (path, leaf.names)
        assert len(set(leaf.names)) == len(leaf.names), (path, leaf.names)


@pytest.mark.parametrize("kind", ["classification", "span_qa"])
def test_finetune_models_share_the_pretrained_encoder(kind):
    model = make_model("xlnet", CFG)
    finetune = make_finetune_model("xlnet", CFG, kind, num_classes=3)
    tokens = jnp.asarray(np.random.default_rng(6).integers(7, CFG.vocab_size, (B, L)), jnp.int32)
    batch = {"token_ids": tokens.at[1, -2:].set(0), "type_ids": jnp.zeros((B, L), jnp.int32)}
    ft = jax.eval_shape(lambda: nn.unbox(finetune.init({"params": jax.random.key(0)}, batch)))
    order = np.tile(np.arange(L), (B, 1))
    pre = jax.eval_shape(lambda: nn.unbox(model.init({"params": jax.random.key(0)},
                                                     order_batch(order, order[:, :2]))))
    assert (jax.tree_util.tree_structure(ft["params"]["encoder"])
            == jax.tree_util.tree_structure(pre["params"]["encoder"]))
    out = jax.eval_shape(lambda p: finetune.apply(p, batch), ft)
    shapes = {k: v.shape for k, v in out.items()}
    assert shapes == ({"logits": (B, 3)} if kind == "classification" else
                      {"start_logits": (B, L), "end_logits": (B, L)})
