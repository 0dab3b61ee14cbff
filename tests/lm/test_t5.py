"""T5 v1.1 (lm/t5.py) and its decoding (lm/generation.py): cached decoding equals recomputing the
whole decoder, beam width 1 is greedy, padding and packing do not leak, scan/remat change
nothing, and every parameter has known logical axes."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lm import axes, generation
from lm.config import TransformerConfig
from lm.models import ARCHITECTURES, make_model
from lm.t5 import T5ForPretraining
from tests.lm.conftest import jit

V, EOS = 50, 6
T5_TINY = TransformerConfig(
    vocab_size=V, hidden_size=32, num_layers=2, num_heads=4, mlp_dim=48, head_dim=8,
    dropout_rate=0.0, attention_dropout_rate=0.0, activation="gelu_tanh", norm_position="pre",
    layer_norm_eps=1e-6, num_decoder_layers=3, relative_buckets=8, relative_max_distance=16)


def t5_batch(seed: int = 0, b: int = 2, s: int = 10, t: int = 7) -> dict[str, np.ndarray]:
    """Random sources (row 1 padded after 6 tokens) and decoder inputs starting with 0."""
    rng = np.random.default_rng(seed)
    source = rng.integers(7, V, (b, s)).astype(np.int32)
    if b > 1:
        source[1, 6:] = 0
    targets = rng.integers(7, V, (b, t)).astype(np.int32)
    inputs = np.concatenate([np.zeros((b, 1), np.int32), targets[:, :-1]], axis=1)
    return {"encoder_input_ids": source, "decoder_input_ids": inputs,
            "decoder_target_ids": targets, "decoder_weights": np.ones((b, t), np.float32)}


def _params(config: TransformerConfig = T5_TINY):
    model = make_model("t5", config)
    return model, nn.unbox(jit(lambda b: model.init(jax.random.key(0), b))(t5_batch())["params"])


def _jiggled(params):
    """Moves the RMSNorm scales off 1 so that every parameter matters."""
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(5), len(leaves))
    return jax.tree.unflatten(tree, [x + 0.3 * jax.random.normal(k, x.shape)
                                     for x, k in zip(leaves, keys, strict=True)])


def test_registry_shapes_and_axes():
    assert ARCHITECTURES["t5"] is T5ForPretraining
    model = make_model("t5", T5_TINY.replace(scan_layers=True, remat="full"))
    boxed = jax.eval_shape(lambda: model.init(jax.random.key(0), t5_batch()))["params"]
    leaves = jax.tree_util.tree_flatten_with_path(
        boxed, is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))[0]
    listing = {"/".join(k.key for k in path): leaf for path, leaf in leaves}
    for path, leaf in listing.items():
        assert isinstance(leaf, nn.LogicallyPartitioned), path
        assert len(leaf.names) == leaf.value.ndim and set(leaf.names) <= set(axes.ALL_AXES), path
    assert not any(p.endswith("/bias") for p in listing)  # v1.1: no biases anywhere
    assert listing["decoder/layers/cross_attention/query/kernel"].value.shape == (3, 4, 8, 32)
    assert listing["encoder/layers/mlp/wi_1/kernel"].names == ("layers", "mlp", "embed")
    assert listing["encoder/relative_bias/embedding"].names == ("pos", "heads")
    assert listing["lm_head/embedding"].value.shape == listing["shared/embedding"].value.shape


def test_scan_and_remat_compute_the_same_logits_and_gradients():
    model, params = _params()
    batch = t5_batch()

    def loss(m, p):
        return jnp.mean(jax.nn.log_softmax(m.apply({"params": p}, batch)["logits"])[..., 7])

    plain_loss, plain = jit(jax.value_and_grad(lambda p: loss(model, p)))(params)
    scanned = make_model("t5", T5_TINY.replace(scan_layers=True, remat="full"))
    stacked = {k: dict(v) for k, v in params.items()}
    for side, n in (("encoder", 2), ("decoder", 3)):
        layers = [stacked[side].pop(f"layers_{i}") for i in range(n)]
        stacked[side]["layers"] = jax.tree.map(lambda *xs: jnp.stack(xs), *layers)
    scan_loss, grads = jit(jax.value_and_grad(lambda p: loss(scanned, p)))(stacked)
    np.testing.assert_allclose(scan_loss, plain_loss, rtol=1e-5)
    np.testing.assert_allclose(grads["decoder"]["layers"]["cross_attention"]["key"]["kernel"][2],
                               plain["decoder"]["layers_2"]["cross_attention"]["key"]["kernel"],
                               rtol=1e-4, atol=1e-7)


def test_source_padding_and_later_targets_do_not_change_logits():
    model, params = _params()
    params = _jiggled(params)
    batch = t5_batch()
    run = jit(lambda p, b: model.apply({"params": p}, b)["logits"])
    base = run(params, batch)
    changed = dict(batch, encoder_input_ids=batch["encoder_input_ids"].copy(),
                   decoder_input_ids=batch["decoder_input_ids"].copy())
    changed["encoder_input_ids"][1, 6:] = 0  # still padding, padded wider below
    wider = dict(changed, encoder_input_ids=np.pad(changed["encoder_input_ids"], ((0, 0), (0, 5))))
    np.testing.assert_allclose(run(params, wider), base, rtol=1e-4, atol=1e-4)
    changed["decoder_input_ids"][:, 4:] = 9  # the future cannot be seen (causal)
    after = run(params, changed)
    np.testing.assert_allclose(after[:, :4], base[:, :4], rtol=1e-4, atol=1e-4)
    assert not np.allclose(after[:, 4:], base[:, 4:])


def test_packed_examples_match_separate_ones():
    """Two examples packed into one row (segment ids) give each one's own logits."""
    model, params = _params()
    params = _jiggled(params)
    a, b = t5_batch(1, b=1, s=5, t=4), t5_batch(2, b=1, s=6, t=3)
    packed = {k: np.concatenate([a[k], b[k]], axis=1) for k in
              ("encoder_input_ids", "decoder_input_ids")}
    packed["encoder_segment_ids"] = np.array([[1] * 5 + [2] * 6], np.int32)
    packed["decoder_segment_ids"] = np.array([[1] * 4 + [2] * 3], np.int32)
    run = jit(lambda p, x: model.apply({"params": p}, x)["logits"])
    got = run(params, packed)
    np.testing.assert_allclose(got[:, :4], run(params, a), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got[:, 4:], run(params, b), rtol=1e-4, atol=1e-4)


def _recomputed_greedy(model, params, source, steps):
    """Greedy decoding that reruns the whole decoder on every prefix: (tokens, step logits)."""
    run = jit(lambda p, b: model.apply({"params": p}, b)["logits"])
    inputs = np.zeros((source.shape[0], 1), np.int32)
    logits = []
    for _ in range(steps):
        step = np.asarray(run(params, {"encoder_input_ids": source,
                                       "decoder_input_ids": inputs}))[:, -1]
        logits.append(step)
        inputs = np.concatenate([inputs, step.argmax(-1)[:, None].astype(np.int32)], axis=1)
    return inputs[:, 1:], np.stack(logits, axis=1)


def test_cached_decoding_equals_recomputing_the_decoder():
    model, params = _params()
    params = _jiggled(params)
    source = t5_batch()["encoder_input_ids"]
    tokens, logits = _recomputed_greedy(model, params, source, 6)
    got = generation.generate_seq2seq(model, params, source, jax.random.key(0), greedy=True,
                                      max_new_tokens=6, eos_id=V + 1)
    np.testing.assert_array_equal(got, tokens)
    # The cached path's logits, step by step, with the recomputed path's tokens fed in.
    start = jit(lambda p, s: model.apply({"params": p}, s, 7, method="start"))
    extend = jit(lambda p, token, cache: model.apply({"params": p}, token, token, token > -1,
                                                     cache, method="extend"))
    step_logits, cache = start(params, source)
    cached = [step_logits[:, 0]]
    for t in range(5):
        step_logits, cache = extend(params, jnp.asarray(tokens[:, t:t + 1]), cache)
        cached.append(step_logits[:, 0])
    np.testing.assert_allclose(np.stack(cached, axis=1), logits, rtol=1e-4, atol=1e-4)


def test_beam_width_one_is_greedy_and_decoding_stops_at_eos():
    model, params = _params()
    params = _jiggled(params)
    source = t5_batch(3, b=3)["encoder_input_ids"]
    greedy = np.asarray(generation.generate_seq2seq(
        model, params, source, jax.random.key(0), greedy=True, max_new_tokens=5, eos_id=V + 1))
    beams, _ = generation.beam_search_seq2seq(model, params, source, 0.6, beam_width=1,
                                              max_new_tokens=5, eos_id=V + 1)
    np.testing.assert_array_equal(beams[:, 0], greedy)
    eos = int(greedy[0, 1])  # row 0 emits it second: afterwards only padding
    stopped = np.asarray(generation.generate_seq2seq(
        model, params, source, jax.random.key(0), greedy=True, max_new_tokens=5, eos_id=eos))
    assert (stopped[0, :2] == greedy[0, :2]).all() and (stopped[0, 2:] == 0).all()
    wide, scores = generation.beam_search_seq2seq(model, params, source, 0.6, beam_width=3,
                                                  max_new_tokens=5, eos_id=V + 1)
    assert wide.shape == (3, 3, 5) and (np.diff(np.asarray(scores), axis=1) <= 1e-6).all()


@pytest.mark.parametrize("top_k,top_p", [(1, 1.0), (0, 1e-6)])
def test_sampling_with_one_candidate_is_greedy(top_k, top_p):
    model, params = _params()
    source = t5_batch()["encoder_input_ids"]
    greedy = generation.generate_seq2seq(model, params, source, jax.random.key(0), greedy=True,
                                         max_new_tokens=4, eos_id=V + 1)
    sampled = generation.generate_seq2seq(model, params, source, jax.random.key(1), 0.7,
                                          max_new_tokens=4, top_k=top_k, top_p=top_p,
                                          eos_id=V + 1)
    np.testing.assert_array_equal(sampled, greedy)


@pytest.mark.parametrize("impl", ["dot_product", "flash"])
def test_attention_impls_give_the_xla_logits(impl):
    """``dot_product`` takes the relative bias as its ``bias``; ``flash`` falls back to ``xla``
    for biased self-attention and for cross-attention (lm/attention.py: fallback)."""
    model, params = _params()
    params = _jiggled(params)
    batch = dict(t5_batch(), decoder_segment_ids=np.ones((2, 7), np.int32))
    other = make_model("t5", T5_TINY.replace(attention_impl=impl))
    want = jit(lambda p: model.apply({"params": p}, batch)["logits"])(params)
    got = jit(lambda p: other.apply({"params": p}, batch)["logits"])(params)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
