"""Properties of the encoder: padding invariance, packing equivalence, scan/remat equivalence,
dropout, bfloat16 compute, and logical constraints under a mesh."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lm import axes
from lm.encoder import Encoder
from lm.models import make_model
from tests.lm.conftest import TINY, forward, init_params, jit, loss_and_grads, make_batch

KEY = jax.random.key(0)


def _close(got, want, rtol=1e-5, atol=1e-5):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=rtol, atol=atol), got, want)


def _encode(config, params, *batches):
    """Encoder outputs [B, L, D] for each batch, from one compiled program."""
    def run(p, bs):
        return [Encoder(config).apply({"params": p}, b, deterministic=True) for b in bs]
    return jit(run)(params["encoder"], batches)


def _pad(batch, extra):
    out = dict(batch)
    for key in ("token_ids", "type_ids"):
        out[key] = np.pad(batch[key], ((0, 0), (0, extra)))
    return out


def _outputs_and_hidden(config, params, *batches):
    """Model outputs and the encoder's [B, L, D] output for each batch, from one program."""
    model = make_model("bert", config)

    def is_encoder_output(module, method_name):
        return isinstance(module, Encoder) and method_name == "__call__"

    def run(p, bs):
        results = []
        for b in bs:
            out, state = model.apply({"params": p}, b, capture_intermediates=is_encoder_output,
                                     mutable=["intermediates"])
            results.append((out, state["intermediates"]["encoder"]["__call__"][0]))
        return results

    return jit(run)(params, batches)


@pytest.mark.parametrize("changes", [{}, {"embed_dim": 16, "norm_position": "pre"}],
                         ids=["bert", "factorised_pre_ln"])
def test_appended_padding_changes_nothing(changes):
    config = TINY.replace(**changes)
    batch = make_batch()
    (out, hidden), (out_padded, hidden_padded) = _outputs_and_hidden(
        config, init_params(config), batch, _pad(batch, 8))
    _close(out_padded, out)
    _close(hidden_padded[0, :16], hidden[0])
    _close(hidden_padded[1, :11], hidden[1, :11])


def test_packed_examples_match_separate_runs():
    rng = np.random.default_rng(1)
    a, b = rng.integers(7, 97, 6), rng.integers(7, 97, 9)
    ta, tb = np.r_[0, 0, 0, 1, 1, 1], np.r_[0, 0, 0, 0, 1, 1, 1, 1, 1]

    def row(*parts):
        return np.pad(np.concatenate(parts), (0, 16 - sum(len(p) for p in parts)))

    packed = {"token_ids": row(a, b)[None], "type_ids": row(ta, tb)[None],
              "segment_ids": row(np.full(6, 1), np.full(9, 2))[None],
              "positions": row(np.arange(6), np.arange(9))[None]}
    separate = {"token_ids": np.stack([row(a), row(b)]), "type_ids": np.stack([row(ta), row(tb)])}
    packed, separate = (jax.tree.map(lambda x: jnp.asarray(x, jnp.int32), d)
                        for d in (packed, separate))
    hidden_packed, hidden_separate = _encode(TINY, init_params(TINY), packed, separate)
    _close(hidden_packed[0, :6], hidden_separate[0, :6])
    _close(hidden_packed[0, 6:15], hidden_separate[1, :9])


def _restack(params):
    """Unscanned ``layers_i`` subtrees → one ``layers`` subtree stacked on a leading axis."""
    enc = dict(params["encoder"])
    per_layer = [enc.pop(f"layers_{i}") for i in range(TINY.num_layers)]
    enc["layers"] = jax.tree.map(lambda *xs: np.stack(xs), *per_layer)
    return {**params, "encoder": enc}


def test_scanned_remat_layers_match_unrolled_layers():
    params, batch = init_params(TINY), make_batch()
    (loss, out), grads = loss_and_grads(TINY)(params, batch)
    config = TINY.replace(scan_layers=True, remat="full")
    (loss2, out2), grads2 = loss_and_grads(config)(_restack(params), batch)
    np.testing.assert_allclose(loss2, loss, rtol=1e-6)
    _close(out2, out, atol=1e-6)
    _close(grads2, _restack(grads), atol=1e-6)


def test_remat_changes_neither_dropout_nor_gradients():
    # Scanned, where remat meets per-layer rng splitting; the unrolled remat path is the same
    # lifted transform without the scan.
    params, batch = _restack(init_params(TINY)), make_batch()
    config = TINY.replace(scan_layers=True)
    (loss, out), grads = loss_and_grads(config, False)(params, batch)
    (loss2, out2), grads2 = loss_and_grads(config.replace(remat="full"), False)(params, batch)
    np.testing.assert_allclose(loss2, loss, rtol=1e-6)
    _close(out2, out, atol=1e-6)
    _close(grads2, grads, atol=1e-6)


def test_dropout_depends_on_rng_only_when_training():
    params, batch = init_params(TINY), make_batch()
    train, evaluate = forward(TINY, False), forward(TINY, True)
    k1, k2 = jax.random.key(1), jax.random.key(2)

    def logits(fn, key):
        return np.asarray(fn(params, batch, key)["mlm_logits"])

    np.testing.assert_array_equal(logits(evaluate, k1), logits(evaluate, k2))
    np.testing.assert_array_equal(logits(train, k1), logits(train, k1))
    assert not np.allclose(logits(train, k1), logits(train, k2))
    assert not np.allclose(logits(train, k1), logits(evaluate, k1))


def test_bfloat16_compute_keeps_float32_params_and_logits():
    config, batch = TINY.replace(dtype="bfloat16"), make_batch()
    boxed = jax.eval_shape(lambda: make_model("bert", config).init(KEY, batch))["params"]
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(nn.unbox(boxed)))
    params = init_params(TINY)  # the dtype changes computation only, so the same params fit
    hidden = jax.eval_shape(lambda p: Encoder(config).apply({"params": p}, batch,
                                                            deterministic=True),
                            params["encoder"])
    assert hidden.dtype == jnp.bfloat16
    out = forward(config)(params, batch, KEY)
    want = forward(TINY)(params, batch, KEY)
    for key in ("mlm_logits", "nsp_logits"):
        assert out[key].dtype == jnp.float32 and np.isfinite(out[key]).all()
        # bfloat16 keeps ~3 significant digits; this only catches gross errors.
        np.testing.assert_allclose(out[key], want[key], atol=0.1)


def test_logical_constraints_under_a_mesh():
    params, batch = init_params(TINY), make_batch(batch=4, real=(16, 11, 5, 9))
    model = make_model("bert", TINY)
    want = forward(TINY)(params, batch, KEY)
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:8]).reshape(2, 2, 2), axes.MESH_AXES)
    with jax.set_mesh(mesh), nn.logical_axis_rules(axes.DEFAULT_RULES):
        # Initialisers run under the mesh too (the trainer inits in its sharded layout).
        for config in (TINY, TINY.replace(scan_layers=True, embed_dim=16)):
            jax.eval_shape(lambda c=config: make_model("bert", c).init(KEY, batch))
        run = jit(lambda p, b: model.apply({"params": p}, b))
        assert "sharding" in run.lower(params, batch).as_text()
        got = run(params, batch)
    _close(got, want)


def test_legacy_mesh_context_is_accepted():
    params, batch = init_params(TINY), make_batch(batch=4, real=(16, 11, 5, 9))
    model = make_model("bert", TINY)
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:8]).reshape(2, 2, 2), axes.MESH_AXES)
    with pytest.warns(DeprecationWarning), mesh, nn.logical_axis_rules(axes.DEFAULT_RULES):
        got = jit(lambda p, b: model.apply({"params": p}, b))(params, batch)
    _close(got, forward(TINY)(params, batch, KEY))
