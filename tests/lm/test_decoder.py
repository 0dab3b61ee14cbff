"""The GPT decoder: causality, packing, KV cache, parameter names, scan, classification."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lm import axes, decoder
from lm.config import TransformerConfig
from lm.gpt import GptForClassification, GptForPretraining
from lm.heads import last_token
from lm.models import ARCHITECTURES, FINETUNE_MODELS, make_finetune_model, make_model
from tests.lm.conftest import jit

GPT = TransformerConfig(vocab_size=97, hidden_size=32, num_layers=2, num_heads=4, mlp_dim=64,
                        max_length=32, norm_position="pre", activation="gelu_tanh",
                        layer_norm_eps=1e-5, dropout_rate=0.0, attention_dropout_rate=0.0)
L = 16


def tokens(seed: int, shape) -> jnp.ndarray:
    return jnp.asarray(np.random.default_rng(seed).integers(7, GPT.vocab_size, shape), jnp.int32)


@functools.cache
def params(config: TransformerConfig = GPT):
    model = make_model("gpt", config)
    init = jit(lambda b: model.init({"params": jax.random.key(0)}, b, deterministic=True))
    return nn.unbox(init({"token_ids": tokens(0, (2, L))})["params"])


@functools.cache
def forward(config: TransformerConfig = GPT):
    model = make_model("gpt", config)
    return jit(lambda p, b: model.apply({"params": p}, b)["logits"])


@functools.cache
def extend(config: TransformerConfig = GPT):
    model = make_model("gpt", config)
    return jit(lambda p, t, pos, real, c: model.apply({"params": p}, t, pos, real, c,
                                                      method=GptForPretraining.extend))


def test_registry_and_outputs():
    assert ARCHITECTURES["gpt"] is GptForPretraining
    assert FINETUNE_MODELS["gpt"]["classification"] is GptForClassification
    logits = forward()(params(), {"token_ids": tokens(1, (2, L))})
    assert logits.shape == (2, L, GPT.vocab_size) and logits.dtype == jnp.float32


def _grads_wrt_embedded_inputs(batch, query: int):
    """d(sum of logits at ``query`` in row 0) / d(embedding output) [B, L, D]."""
    model = make_model("gpt", GPT)
    p = params()  # outside the trace: params() is cached, and jit may not nest with its options

    def f(delta_BLD):
        def add_delta(next_fun, args, kwargs, context):
            out = next_fun(*args, **kwargs)
            if isinstance(context.module, decoder.GptEmbeddings) and \
                    context.method_name == "__call__":
                return out + delta_BLD
            return out
        with nn.intercept_methods(add_delta):
            return model.apply({"params": p}, batch)["logits"][0, query].sum()
    return np.asarray(jax.grad(f)(jnp.zeros((2, L, GPT.hidden_size))))


@pytest.mark.parametrize("query", [0, 6, L - 1])
def test_causality_by_gradient(query):
    grads = _grads_wrt_embedded_inputs({"token_ids": tokens(2, (2, L))}, query)
    per_position = np.abs(grads[0]).sum(-1)
    assert (per_position[query + 1:] == 0).all()
    assert (per_position[:query + 1] > 0).all()
    assert (grads[1] == 0).all()  # other rows never mix in


def test_packed_documents_do_not_see_each_other_by_gradient():
    seg = np.array([[1] * 5 + [2] * 7 + [0] * 4] * 2, np.int32)
    pos = np.array([list(range(5)) + list(range(7)) + [0] * 4] * 2, np.int32)
    batch = {"token_ids": tokens(3, (2, L)), "segment_ids": jnp.asarray(seg),
             "positions": jnp.asarray(pos)}
    per_position = np.abs(_grads_wrt_embedded_inputs(batch, 8)[0]).sum(-1)
    assert (per_position[:5] == 0).all() and (per_position[9:] == 0).all()
    assert (per_position[5:9] > 0).all()


def test_packing_equivalence():
    a, b = tokens(4, (5,)), tokens(5, (7,))
    packed = {"token_ids": jnp.concatenate([a, b, jnp.zeros(4, jnp.int32)])[None],
              "segment_ids": jnp.asarray([[1] * 5 + [2] * 7 + [0] * 4]),
              "positions": jnp.asarray([list(range(5)) + list(range(7)) + [0] * 4])}
    got = forward()(params(), packed)[0]
    alone_a = forward()(params(), {"token_ids": jnp.pad(a, (0, L - 5))[None]})[0]
    alone_b = forward()(params(), {"token_ids": jnp.pad(b, (0, L - 7))[None]})[0]
    np.testing.assert_allclose(got[:5], alone_a[:5], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[5:12], alone_b[:7], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scan", [False, True], ids=["loop", "scan"])
def test_kv_cache_decoding_equals_full_forward(scan):
    config = GPT.replace(scan_layers=scan)
    ids = tokens(6, (2, 12))
    full = forward(config)(params(config), {"token_ids": ids})
    cache = decoder.init_cache(config, 2, 20)
    pos = jnp.broadcast_to(jnp.arange(12, dtype=jnp.int32), (2, 12))
    real = jnp.ones((2, 12), bool)
    step = extend(config)
    logits, cache = step(params(config), ids[:, :5], pos[:, :5], real[:, :5], cache)
    pieces = [logits]
    for t in range(5, 12):
        logits, cache = step(params(config), ids[:, t:t + 1], pos[:, t:t + 1],
                             real[:, t:t + 1], cache)
        pieces.append(logits)
    assert int(cache["index"]) == 12
    np.testing.assert_allclose(jnp.concatenate(pieces, axis=1), full, rtol=1e-5, atol=1e-5)


def test_left_padded_prompt_in_cache_equals_the_prompt_alone():
    prompt = tokens(7, (6,))
    padded = jnp.concatenate([jnp.zeros(4, jnp.int32), prompt])[None]
    real = padded != 0
    pos = jnp.maximum(jnp.cumsum(real, axis=1) - 1, 0).astype(jnp.int32)
    logits, _ = extend()(params(), padded, pos, real, decoder.init_cache(GPT, 1, 12))
    alone = forward()(params(), {"token_ids": prompt[None]})
    np.testing.assert_allclose(logits[0, 4:], alone[0], rtol=1e-5, atol=1e-5)


def test_scan_matches_loop_with_the_same_weights():
    loop, scanned = params(), params(GPT.replace(scan_layers=True))
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *[loop["encoder"][f"layers_{i}"]
                                                       for i in range(GPT.num_layers)])
    moved = {"encoder": {**{k: v for k, v in loop["encoder"].items() if k.startswith("e")},
                         "final_norm": loop["encoder"]["final_norm"], "layers": stacked}}
    assert jax.tree.structure(moved) == jax.tree.structure(scanned)
    ids = {"token_ids": tokens(8, (2, L))}
    np.testing.assert_allclose(forward(GPT.replace(scan_layers=True))(moved, ids),
                               forward()(loop, ids), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("changes", [{}, {"scan_layers": True, "remat": "full"}])
def test_every_param_is_named_with_known_axes_and_the_head_is_tied(changes):
    model = make_model("gpt", GPT.replace(**changes))
    boxed = jax.eval_shape(lambda: model.init({"params": jax.random.key(0)},
                                              {"token_ids": tokens(0, (2, L))}))["params"]
    leaves = jax.tree_util.tree_flatten_with_path(
        boxed, is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))[0]
    names = {"/".join(k.key for k in path): leaf for path, leaf in leaves}
    for path, leaf in names.items():
        assert isinstance(leaf, nn.LogicallyPartitioned), path
        assert len(leaf.names) == leaf.value.ndim and set(leaf.names) <= set(axes.ALL_AXES), path
    assert not any(leaf.value.shape[-1] == GPT.vocab_size for leaf in names.values())
    assert names["encoder/embeddings/token_embed/embedding"].names == ("vocab", "embed")
    assert names["encoder/embeddings/position_embed/embedding"].value.shape == (32, 32)


def test_classification_pools_the_last_real_token():
    x = jnp.arange(2 * 5 * 3, dtype=jnp.float32).reshape(2, 5, 3)
    ids = jnp.asarray([[9, 9, 9, 0, 0], [9, 9, 9, 9, 9]])
    np.testing.assert_array_equal(last_token(x, ids, 0), x[jnp.arange(2), jnp.asarray([2, 4])])
    model = make_finetune_model("gpt", GPT, "classification", num_classes=3)
    batch = {"token_ids": ids, "type_ids": jnp.zeros_like(ids)}
    variables = model.init({"params": jax.random.key(0)}, batch)
    assert set(variables["params"]) == {"encoder", "classifier_head"}
    assert model.apply(variables, batch)["logits"].shape == (2, 3)
