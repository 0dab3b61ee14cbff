"""Sharded training equals single-device training; checkpoints restore onto other meshes.

Runs on the 8 fake CPU devices that tests/conftest.py sets up.
"""

import functools
import itertools

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import pytest

from data import pipeline
from launch.configs import bert
from launch.train import checkpoint, data_options, optimizer, step_fns, train_state
from launch.train import mesh as mesh_lib
from lm import axes, models
from lm.config import TransformerConfig
from objectives import weighted

# H=8 and F=128 divide by every tensor-axis size used below.
MODEL = TransformerConfig(vocab_size=8192, hidden_size=64, num_layers=2, num_heads=8, mlp_dim=128,
                          max_length=64, dropout_rate=0.0, attention_dropout_rate=0.0)
RULES = mesh_lib.rules_from_config(axes.DEFAULT_RULES)
MESHES = [(8, 1, 1), (2, 2, 2), (1, 2, 4), (1, 1, 8)]


def mesh_of(sizes, devices=None):
    cfg = ml_collections.ConfigDict(dict(zip(("data", "fsdp", "tensor"), sizes, strict=True)))
    return mesh_lib.make_mesh(cfg, devices)


@pytest.fixture(scope="module")
def batch(request):
    cfg = bert.get_config("tiny")
    corpus = str(request.config.rootpath / "tests" / "fixtures" / "corpus_slice.txt.gz")
    cfg.data.update(corpus=corpus, max_seq_length=64, max_predictions_per_seq=10,
                    eval_fraction=0.2)
    return next(pipeline.make_dataset(data_options.corpus_options(cfg.data),
                                      data_options.instance_options(cfg.data), "train",
                                      batch_size=16, seed=0))


def setup_state(mesh, batch):
    model = models.make_model("bert", MODEL)
    tx = optimizer.make_optimizer(bert.get_config("tiny").train)
    state, shardings = train_state.create_train_state(model, tx, batch, 0, mesh, RULES)
    return model, tx, state, shardings


def loss_and_grads(mesh, batch, microbatches=1):
    model, _, state, shardings = setup_state(mesh, batch)
    batch_sh = mesh_lib.batch_sharding(mesh, RULES)
    fn = jax.jit(functools.partial(
        step_fns.grads_and_metrics, model=model, objective=weighted({"mlm": 1.0, "nsp": 1.0}),
        objective_kw={}, microbatches=microbatches),
        in_shardings=(shardings.params, batch_sh, None))
    with jax.set_mesh(mesh), nn.logical_axis_rules(RULES):
        loss, grads, _ = fn(state.params, mesh_lib.global_batch(batch, batch_sh),
                            jax.random.key(0))
    return float(loss), jax.device_get(grads), state


@pytest.fixture(scope="module")
def reference(batch):
    return loss_and_grads(mesh_of((1, 1, 1), jax.devices()[:1]), batch)


@pytest.mark.parametrize("sizes", MESHES)
def test_sharded_step_equals_one_device(sizes, batch, reference):
    ref_loss, ref_grads, _ = reference
    loss, grads, state = loss_and_grads(mesh_of(sizes), batch)
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    jax.tree_util.tree_map_with_path(
        lambda path, a, b: np.testing.assert_allclose(
            a, b, rtol=1e-5, atol=1e-6, err_msg=jax.tree_util.keystr(path)), grads, ref_grads)
    # Every parameter is laid out as the rules say.
    model = models.make_model("bert", MODEL)
    boxed = jax.eval_shape(lambda: model.init({"params": jax.random.key(0)}, batch))["params"]
    specs = nn.get_partition_spec(boxed)
    expected = jax.tree_util.tree_map(
        lambda s: nn.logical_to_mesh_axes(tuple(s), RULES), specs,
        is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))
    jax.tree_util.tree_map(lambda arr, spec: _assert_spec(arr.sharding.spec, spec),
                           state.params, expected)


def _assert_spec(actual, expected):
    trim = lambda spec: tuple(spec) + (None,) * 8  # noqa: E731 (trailing Nones are implicit)
    assert trim(actual)[:8] == trim(expected)[:8], (actual, expected)


def test_fsdp_holds_an_eighth_of_the_parameters_per_device(batch):
    _, _, state, _ = setup_state(mesh_of((1, 8, 1)), batch)
    leaves = jax.tree_util.tree_leaves(state.params)
    total = sum(x.nbytes for x in leaves)
    on_device0 = sum(s.data.nbytes for x in leaves for s in x.addressable_shards
                     if s.device == jax.devices()[0])
    # Only vectors without an `embed` dim (biases over mlp/vocab/classes) stay replicated.
    replicated = sum(x.nbytes for x in leaves if "fsdp" not in jax.tree_util.tree_leaves(
        tuple(x.sharding.spec)))
    assert replicated / total < 0.02
    assert on_device0 == (total - replicated) // 8 + replicated
    assert on_device0 / total < 1 / 8 + 0.02


def test_microbatches_give_the_full_batch_gradient(batch):
    mesh = mesh_of((8, 1, 1))
    loss, grads, _ = loss_and_grads(mesh, batch)
    loss4, grads4, _ = loss_and_grads(mesh, batch, microbatches=4)
    assert loss4 == pytest.approx(loss, rel=1e-5)
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), grads4, grads)


def test_restore_onto_other_meshes(tmp_path, batch):
    saved_mesh = mesh_of((8, 1, 1))
    _, tx, state, _ = setup_state(saved_mesh, batch)
    train_cfg = ml_collections.ConfigDict({"keep_checkpoints": 2})
    manager = checkpoint.make_manager(str(tmp_path), train_cfg)
    checkpoint.save(manager, 1, state, {"instances": 16})
    manager.wait_until_finished()
    expected = jax.device_get(state.params)
    for sizes, devices in itertools.chain(((s, None) for s in [(2, 2, 2), (1, 1, 8)]),
                                          [((1, 1, 1), jax.devices()[:1])]):
        mesh = mesh_of(sizes, devices)
        _, _, target, shardings = setup_state(mesh, batch)
        restored, position, step = checkpoint.restore_latest(
            checkpoint.make_manager(str(tmp_path), train_cfg),
            checkpoint.abstract_like(target, shardings))
        assert step == 1 and position == {"instances": 16}
        jax.tree_util.tree_map(np.testing.assert_array_equal, jax.device_get(restored.params),
                               expected)
        jax.tree_util.tree_map(lambda a, s: _assert_spec(a.sharding.spec, s.spec),
                               restored.params, shardings.params)
