"""ALBERT: shared layer (parameter count independent of N), factorised embedding, heads."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lm import models
from lm.albert import AlbertEncoder
from lm.encoder import Encoder
from tests.lm.conftest import TINY, jit, make_batch

ALBERT = TINY.replace(embed_dim=16)  # E = 16, D = 32
KEYS = {"params": jax.random.key(0), "dropout": jax.random.key(1)}


def _shapes(model, batch=None):
    batch = make_batch() if batch is None else batch
    boxed = jax.eval_shape(lambda: model.init(KEYS, batch, deterministic=True))["params"]
    leaves = jax.tree_util.tree_flatten_with_path(
        boxed, is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))[0]
    return {"/".join(k.key for k in path): leaf for path, leaf in leaves}


def _count(listing) -> int:
    return sum(leaf.value.size for leaf in listing.values())


@pytest.mark.parametrize("scan", [False, True], ids=["loop", "scan"])
def test_parameter_count_does_not_depend_on_num_layers(scan):
    counts = {n: _count(_shapes(models.make_model("albert", ALBERT.replace(
        num_layers=n, scan_layers=scan)))) for n in (1, 3, 6)}
    assert len(set(counts.values())) == 1, counts
    bert = _count(_shapes(models.make_model("bert", ALBERT.replace(num_layers=3))))
    assert bert > counts[3]  # BERT's 3 layers cost 2 more layers than ALBERT's shared one


def test_scan_and_loop_give_the_same_tree():
    loop = _shapes(models.make_model("albert", ALBERT.replace(num_layers=3)))
    scan = _shapes(models.make_model("albert", ALBERT.replace(num_layers=3, scan_layers=True)))
    assert {k: (v.value.shape, v.names) for k, v in loop.items()} == {
        k: (v.value.shape, v.names) for k, v in scan.items()}
    assert any(k.startswith("encoder/shared_layer/") for k in loop)
    assert not any("layers_" in k for k in loop)


def test_factorised_embedding_and_tied_head_live_on_factor_axis():
    listing = _shapes(models.make_model("albert", ALBERT))
    want = {
        "encoder/embeddings/token_embed/embedding": ((97, 16), ("vocab", "factor")),
        "encoder/embeddings/position_embed/embedding": ((32, 16), ("pos", "factor")),
        "encoder/embeddings/embed_norm/scale": ((16,), ("factor",)),
        "encoder/embeddings/embed_project/kernel": ((32, 16), ("embed", "factor")),
        "mlm_head/transform/kernel": ((16, 32), ("factor", "embed")),
        "mlm_head/bias": ((97,), ("vocab",)),
        "sop_head/classifier/kernel": ((2, 32), ("classes", "embed")),
        "encoder/pooler/kernel": ((32, 32), ("mlp", "embed")),
    }
    assert {k: (listing[k].value.shape, listing[k].names) for k in want} == want
    # The only vocabulary-sized parameters are the V×E table and the output bias: no V×D matrix.
    assert sorted(k for k, v in listing.items() if 97 in v.value.shape) == [
        "encoder/embeddings/token_embed/embedding", "mlm_head/bias"]


def test_heads_follow_options():
    model = models.make_model("albert", ALBERT, mlm=False, sentence_heads=(("order", 9),))
    listing = _shapes(model)
    assert not any(k.startswith("mlm_head") for k in listing)
    # One slot for [CLS] and two (first and last token) for each of up to 3 segments.
    assert listing["order_head/classifier/kernel"].value.shape == (9, 7, 32)
    batch = {k: v for k, v in make_batch().items() if not k.startswith("mlm_")}
    params = nn.unbox(model.init(KEYS, batch)["params"])
    out = jit(lambda p, b: model.apply({"params": p}, b))(params, batch)
    assert set(out) == {"order_logits"} and out["order_logits"].shape == (2, 9)


def test_scan_and_loop_compute_the_same_function():
    batch = make_batch()
    loop = models.make_model("albert", ALBERT.replace(num_layers=3))
    scan = models.make_model("albert", ALBERT.replace(num_layers=3, scan_layers=True))
    params = nn.unbox(loop.init(KEYS, batch)["params"])
    a = jit(lambda p, b: loop.apply({"params": p}, b))(params, batch)
    b = jit(lambda p, b: scan.apply({"params": p}, b))(params, batch)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-5)


def test_layers_really_share_parameters():
    """ALBERT with N layers computes what a BERT encoder computes whose N layers all hold copies
    of the shared block."""
    batch = make_batch()
    model = models.make_model("albert", ALBERT.replace(num_layers=2))
    params = nn.unbox(model.init(KEYS, batch)["params"])
    enc = AlbertEncoder(ALBERT.replace(num_layers=2))
    got = jit(lambda p, b: enc.apply({"params": p}, b, deterministic=True))(
        params["encoder"], batch)
    bert_params = dict(params["encoder"])
    block = bert_params.pop("shared_layer")
    bert_params.update(layers_0=block, layers_1=block)
    bert = Encoder(ALBERT.replace(num_layers=2))
    want = jit(lambda p, b: bert.apply({"params": p}, b, deterministic=True))(bert_params, batch)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["classification", "span_qa"])
def test_finetune_models_have_the_pretraining_encoder(kind):
    pre = _shapes(models.make_model("albert", ALBERT))
    fine = _shapes(models.make_finetune_model("albert", ALBERT, kind, num_classes=3))
    want = {k: (v.value.shape, v.names) for k, v in fine.items() if k.startswith("encoder/")}
    assert "encoder/shared_layer/mlp/wi/kernel" in want
    # Every encoder parameter of the fine-tuning model is in the pretraining checkpoint (span QA
    # leaves the pooler out, as BERT's does).
    assert want == {k: (pre[k].value.shape, pre[k].names) for k in want}


def test_segment_boundaries_find_each_segments_first_and_last_token():
    from lm import heads
    cls, sep = 2, 3
    token_ids = jnp.asarray([[cls, 10, 11, sep, 12, sep, 13, 14, 15, sep, 0],
                             [cls, 10, sep, 0, 0, 0, 0, 0, 0, 0, 0]])
    positions, present = heads.segment_boundaries(token_ids, sep, 3)
    np.testing.assert_array_equal(positions, [[1, 4, 6, 2, 4, 8], [1, 0, 0, 1, 0, 0]])
    np.testing.assert_array_equal(present, [[1, 1, 1, 1, 1, 1], [1, 0, 0, 1, 0, 0]])
    assert heads.max_segments(9) == 3 and heads.max_segments(1) == 1
    with pytest.raises(ValueError, match="not 1! \\+ 2!"):
        heads.max_segments(5)
