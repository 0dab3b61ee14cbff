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


def create_train_state(model: nn.Module, tx, batch: dict, seed: int, mesh, rules):
    """Initialises the state directly in its sharded layout.

    The init is jitted with `out_shardings`, so no device ever holds an unsharded copy.

    Returns:
      (state, state_shardings)
    """
    def init_boxed(key):
        params_key, dropout_key = jax.random.split(key)
        variables = model.init({"params": params_key, "dropout": dropout_key}, batch,
                               deterministic=True)
        params = variables["params"]
        zero = jnp.zeros((), jnp.int32)
        return TrainState(step=zero, params=params, opt_state=tx.init(params),
                          skipped_steps=zero, nonfinite_run=zero)

    key = jax.random.key(seed)
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        abstract = jax.eval_shape(init_boxed, key)
        shardings = mesh_lib.logical_shardings(abstract, mesh, rules)
        state = jax.jit(lambda k: nn.unbox(init_boxed(k)), out_shardings=shardings)(key)
    return state, shardings
