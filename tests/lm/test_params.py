"""Golden parameter tree of the tiny BERT, and logical-axis hygiene of every architecture."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lm import axes
from lm.models import ARCHITECTURES, make_model
from tests.lm.conftest import TINY, init_params, make_batch

# path → (shape, logical axes) of BERT with V=97, D=32, N=2, H=4 (K=8), F=64, max_length=32.
# Kernels are [out, in] (lm/layers.py:Dense).
_LAYER = {
    "attention/key/bias": ((4, 8), ("heads", "kv")),
    "attention/key/kernel": ((4, 8, 32), ("heads", "kv", "embed")),
    "attention/out/bias": ((32,), ("embed",)),
    "attention/out/kernel": ((32, 4, 8), ("embed", "heads", "kv")),
    "attention/query/bias": ((4, 8), ("heads", "kv")),
    "attention/query/kernel": ((4, 8, 32), ("heads", "kv", "embed")),
    "attention/value/bias": ((4, 8), ("heads", "kv")),
    "attention/value/kernel": ((4, 8, 32), ("heads", "kv", "embed")),
    "attention_norm/bias": ((32,), ("embed",)),
    "attention_norm/scale": ((32,), ("embed",)),
    "mlp/wi/bias": ((64,), ("mlp",)),
    "mlp/wi/kernel": ((64, 32), ("mlp", "embed")),
    "mlp/wo/bias": ((32,), ("embed",)),
    "mlp/wo/kernel": ((32, 64), ("embed", "mlp")),
    "mlp_norm/bias": ((32,), ("embed",)),
    "mlp_norm/scale": ((32,), ("embed",)),
}
TINY_BERT_PARAMS = {
    "encoder/embeddings/embed_norm/bias": ((32,), ("embed",)),
    "encoder/embeddings/embed_norm/scale": ((32,), ("embed",)),
    "encoder/embeddings/position_embed/embedding": ((32, 32), ("pos", "embed")),
    "encoder/embeddings/token_embed/embedding": ((97, 32), ("vocab", "embed")),
    "encoder/embeddings/type_embed/embedding": ((2, 32), ("types", "embed")),
    **{f"encoder/layers_0/{k}": v for k, v in _LAYER.items()},
    **{f"encoder/layers_1/{k}": v for k, v in _LAYER.items()},
    "encoder/pooler/bias": ((32,), ("mlp",)),
    "encoder/pooler/kernel": ((32, 32), ("mlp", "embed")),
    "mlm_head/bias": ((97,), ("vocab",)),
    "mlm_head/transform/bias": ((32,), ("factor",)),
    "mlm_head/transform/kernel": ((32, 32), ("factor", "embed")),
    "mlm_head/transform_norm/bias": ((32,), ("factor",)),
    "mlm_head/transform_norm/scale": ((32,), ("factor",)),
    "nsp_head/classifier/bias": ((2,), ("classes",)),
    "nsp_head/classifier/kernel": ((2, 32), ("classes", "embed")),
}


def _listing(config, arch="bert", **options):
    model = make_model(arch, config, **options)
    boxed = jax.eval_shape(
        lambda: model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)},
                           make_batch(), deterministic=True))["params"]
    leaves = jax.tree_util.tree_flatten_with_path(
        boxed, is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))[0]
    return {"/".join(k.key for k in path): leaf for path, leaf in leaves}


def test_tiny_bert_param_tree_is_golden():
    listing = _listing(TINY)
    for path, leaf in listing.items():
        assert isinstance(leaf, nn.LogicallyPartitioned), f"{path} has no logical axes"
        assert leaf.value.dtype == jnp.float32, path
    got = {path: (leaf.value.shape, leaf.names) for path, leaf in listing.items()}
    assert got == TINY_BERT_PARAMS


def test_scanned_params_are_stacked_on_layers_axis():
    listing = _listing(TINY.replace(scan_layers=True))
    assert not any("layers_0" in p for p in listing)
    for k, (shape, names) in _LAYER.items():
        leaf = listing[f"encoder/layers/{k}"]
        assert (leaf.value.shape, leaf.names) == ((2, *shape), ("layers", *names))


# XLNet takes a permutation-LM batch and has no scan yet: tests/lm/test_xlnet.py checks its axes;
# T5 takes a seq2seq batch: tests/lm/test_t5.py checks its.
@pytest.mark.parametrize("arch", sorted(set(ARCHITECTURES) - {"xlnet", "t5"}))
@pytest.mark.parametrize("changes", [
    {},
    {"scan_layers": True, "remat": "full"},
    {"embed_dim": 16, "norm_position": "pre"},
], ids=["plain", "scan_remat", "factorised_pre_ln"])
def test_every_param_is_named_with_known_axes(arch, changes):
    config = TINY.replace(**changes)
    for path, leaf in _listing(config, arch).items():
        assert isinstance(leaf, nn.LogicallyPartitioned), f"{path} has no logical axes"
        assert len(leaf.names) == leaf.value.ndim, path
        unknown = [n for n in leaf.names if n not in axes.ALL_AXES]
        assert not unknown, f"{path} uses axes {unknown} not in lm.axes.ALL_AXES"
        assert len(set(leaf.names)) == len(leaf.names), f"{path} repeats an axis: {leaf.names}"


def test_factorised_embedding_projects_e_to_d():
    listing = _listing(TINY.replace(embed_dim=16))
    proj = listing["encoder/embeddings/embed_project/kernel"]
    assert (proj.value.shape, proj.names) == ((32, 16), ("embed", "factor"))
    tok = listing["encoder/embeddings/token_embed/embedding"]
    assert (tok.value.shape, tok.names) == ((97, 16), ("vocab", "factor"))


def test_init_values_follow_bert():
    params = init_params(TINY)
    emb = params["encoder"]["embeddings"]
    table = np.asarray(emb["token_embed"]["embedding"])
    # A normal truncated at ±2 std keeps 0.88 of its std (as TF's truncated_normal_initializer).
    assert abs(table.std() - 0.88 * TINY.initializer_range) < 0.0015
    assert np.abs(table).max() <= 2 * TINY.initializer_range  # truncated at 2 std
    assert (np.asarray(emb["embed_norm"]["scale"]) == 1).all()
    assert not np.asarray(emb["embed_norm"]["bias"]).any()
    assert not np.asarray(params["encoder"]["layers_0"]["attention"]["query"]["bias"]).any()
