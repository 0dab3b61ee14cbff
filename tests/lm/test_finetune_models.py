"""Fine-tuning models: outputs, pooling, padding, the encoder subtree shared with pretraining."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lm import heads, models
from tests.lm.conftest import TINY, init_params, jit, make_batch

KEY = jax.random.key(0)


def _init(model, batch):
    import flax.linen as nn
    return nn.unbox(jit(lambda b: model.init({"params": KEY}, b, deterministic=True))(batch)
                    ["params"])


def _task_batch(real=(16, 11)):
    b = make_batch(real=real)
    return {"token_ids": b["token_ids"], "type_ids": b["type_ids"]}


@pytest.mark.parametrize("pooling", models.POOLINGS)
def test_classifier_outputs_and_param_tree(pooling):
    model = models.make_finetune_model("bert", TINY, "classification", num_classes=3,
                                       pooling=pooling)
    batch = _task_batch()
    params = _init(model, batch)
    assert set(params) == {"encoder", "classifier_head"}
    # Only BERT's pooler pooling creates (and so restores) the pretrained pooler.
    assert ("pooler" in params["encoder"]) == (pooling == "pooler")
    out = model.apply({"params": params}, batch)
    assert out["logits"].shape == (2, 3) and out["logits"].dtype == jnp.float32
    # The encoder subtree has the same shapes as the pretraining model's.
    pre = init_params(TINY)["encoder"]
    for path, leaf in jax.tree_util.tree_leaves_with_path(params["encoder"]):
        ref = pre
        for k in path:
            ref = ref[k.key]
        assert ref.shape == leaf.shape


def test_regression_has_one_output():
    model = models.make_finetune_model("bert", TINY, "regression", pooling="mean")
    batch = _task_batch()
    out = model.apply({"params": _init(model, batch)}, batch)
    assert out["logits"].shape == (2, 1)


def test_mean_pooling_ignores_padding():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 5, 3)), jnp.float32)
    ids = jnp.asarray([[9, 9, 9, 0, 0], [9, 9, 9, 9, 9]])
    pooled = heads.mean_pool(x, ids, 0)
    np.testing.assert_allclose(pooled[0], x[0, :3].mean(0), rtol=1e-6)
    np.testing.assert_allclose(pooled[1], x[1].mean(0), rtol=1e-6)


def test_span_model_masks_padding_and_is_padding_invariant():
    model = models.make_finetune_model("bert", TINY, "span_qa")
    batch = _task_batch(real=(16, 11))
    params = _init(model, batch)
    assert set(params) == {"encoder", "span_head"}
    out = model.apply({"params": params}, batch)
    assert out["start_logits"].shape == (2, 16) and out["end_logits"].shape == (2, 16)
    assert np.all(np.asarray(out["start_logits"][1, 11:]) <= -1e8)
    # The same sequence with less padding scores its real positions the same.
    short = {k: v[1:, :12] for k, v in batch.items()}
    out_short = model.apply({"params": params}, short)
    np.testing.assert_allclose(out_short["start_logits"][0, :11], out["start_logits"][1, :11],
                               rtol=1e-5, atol=1e-5)


def test_unknown_kind_or_pooling_is_refused():
    with pytest.raises(ValueError, match="no fine-tuning model"):
        models.make_finetune_model("bert", TINY, "ranking")
    with pytest.raises(ValueError, match="unknown pooling"):
        models.make_finetune_model("bert", TINY, "classification", num_classes=2, pooling="max")


def _states_and_ids():
    x = jnp.asarray(np.random.default_rng(1).normal(size=(3, 5, 4)), jnp.float32)
    # Right-padded, left-padded, no padding.
    ids = jnp.asarray([[9, 9, 9, 0, 0], [0, 0, 9, 9, 9], [9, 9, 9, 9, 9]])
    return x, ids


def test_last_token_is_the_last_real_position_on_either_side():
    x, ids = _states_and_ids()
    np.testing.assert_array_equal(heads.last_token(x, ids, 0),
                                  x[jnp.arange(3), jnp.asarray([2, 4, 4])])


def test_pooled_methods():
    x, ids = _states_and_ids()
    dense = lambda h: 2.0 * h + 1.0  # noqa: E731
    first, last = x[:, 0], heads.last_token(x, ids, 0)
    want = {("pooler", "first"): jnp.tanh(dense(first)), ("cls", "first"): first,
            ("pooler", "last"): jnp.tanh(dense(last)), ("cls", "last"): last,
            ("mean", "first"): heads.mean_pool(x, ids, 0), ("last", "first"): last}
    for (method, summary), value in want.items():
        got = heads.pooled(x, ids, method, pad_id=0, summary=summary, pooler=dense)
        np.testing.assert_array_equal(got, value, err_msg=f"{method}/{summary}")
    # Without a pooler layer (GPT), ``pooler`` is the summary token itself.
    np.testing.assert_array_equal(heads.pooled(x, ids, "pooler", pad_id=0, summary="last"), last)
    with pytest.raises(ValueError, match="unknown pooling"):
        heads.pooled(x, ids, "max", pad_id=0)
    with pytest.raises(ValueError, match="unknown summary"):
        heads.pooled(x, ids, "cls", pad_id=0, summary="middle")


def test_t5_classifier_keeps_the_pretraining_body_and_ignores_padding():
    """T5's sentence head: the pretraining model's ``shared`` and ``encoder`` groups (same
    shapes, so they restore), a new head; padding changes nothing; span QA is refused."""
    cfg = TINY.replace(num_decoder_layers=1)
    model = models.make_finetune_model("t5", cfg, "classification", num_classes=3,
                                       pooling="mean")
    batch = _task_batch()
    params = _init(model, batch)
    assert set(params) == {"shared", "encoder", "classifier_head"}
    assert models.body_groups("t5") == ("shared", "encoder")
    pre_model = models.make_model("t5", cfg)
    seq = {"encoder_input_ids": batch["token_ids"], "decoder_input_ids": batch["token_ids"][:, :4]}
    pre = _init(pre_model, seq)
    for group in models.body_groups("t5"):
        assert jax.tree_util.tree_map(np.shape, params[group]) == jax.tree_util.tree_map(
            np.shape, pre[group])
    out = model.apply({"params": params}, batch)
    assert out["logits"].shape == (2, 3) and out["logits"].dtype == jnp.float32
    short = {k: v[1:, :11] for k, v in batch.items()}
    np.testing.assert_allclose(model.apply({"params": params}, short)["logits"][0],
                               out["logits"][1], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="qa_disflqa_generative"):
        models.make_finetune_model("t5", cfg, "span_qa")
