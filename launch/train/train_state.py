"""The train state: one pytree with everything that changes during training, and its
sharded initialisation."""

from __future__ import annotations

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from launch.train import mesh as mesh_lib


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training, as one pytree (saved whole by Orbax).

    ``skipped_steps`` counts the updates skipped because the loss or gradient norm was NaN/Inf;
    ``nonfinite_run`` the steps since the current run of such steps began (0 after a good step).
    Once it reaches ``train.max_nonfinite_steps`` the state is halted: it keeps counting but never
    updates again (see ``train_step``), and the loop stops without saving it.
    """
    step: jax.Array
    params: Any
    opt_state: Any
    skipped_steps: jax.Array
    nonfinite_run: jax.Array


def dummy_batch(feature_shapes: dict) -> dict[str, np.ndarray]:
    """Zeros with the schema's shapes, for init and shape inference."""
    return {k: np.zeros(shape, dtype) for k, (shape, dtype) in feature_shapes.items()}


def _init_fn(model: nn.Module, tx):
    """(key, batch) → the boxed initial state (``nn.LogicallyPartitioned`` leaves carry their
    axes)."""
    def init_boxed(key, batch):
        params_key, dropout_key = jax.random.split(key)
        variables = model.init({"params": params_key, "dropout": dropout_key}, batch,
                               deterministic=True)
        params = variables["params"]
        zero = jnp.zeros((), jnp.int32)
        return TrainState(step=zero, params=params, opt_state=tx.init(params),
                          skipped_steps=zero, nonfinite_run=zero)
    return init_boxed


def abstract_train_state(model: nn.Module, tx, batch: dict, mesh, rules):
    """The state's shapes and dtypes without computing it (``jax.eval_shape``), each leaf a
    ``jax.ShapeDtypeStruct`` carrying its sharding: what an ahead-of-time compile lowers with.

    Returns:
      (abstract_state, state_shardings)
    """
    key = jax.eval_shape(lambda: jax.random.key(0))
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        boxed = jax.eval_shape(_init_fn(model, tx), key, batch)
        shardings = mesh_lib.logical_shardings(boxed, mesh, rules)
    abstract = jax.tree_util.tree_map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), nn.unbox(boxed),
        shardings)
    return abstract, shardings


def create_train_state(model: nn.Module, tx, batch: dict, seed: int, mesh, rules):
    """Initialises the state directly in its sharded layout.

    The init is jitted with `out_shardings`, so no device ever holds an unsharded copy.

    Returns:
      (state, state_shardings)
    """
    _, shardings = abstract_train_state(model, tx, batch, mesh, rules)
    init_boxed = _init_fn(model, tx)
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        state = jax.jit(lambda k: nn.unbox(init_boxed(k, batch)),
                        out_shardings=shardings)(jax.random.key(seed))
    return state, shardings
