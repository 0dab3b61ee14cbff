"""Tiny BERT config and batches shared by the model tests."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lm.config import TransformerConfig
from lm.models import make_model
from objectives import total_loss, weighted

TINY = TransformerConfig(vocab_size=97, hidden_size=32, num_layers=2, num_heads=4, mlp_dim=64,
                         max_length=32)
B, L, P = 2, 16, 4


def make_batch(seed: int = 0, *, batch: int = B, length: int = L, real: tuple[int, ...] = (16, 11),
               predictions: int = P) -> dict[str, jax.Array]:
    """A BERT (MLM + NSP) batch; sequence i has ``real[i]`` non-pad tokens then padding."""
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(7, TINY.vocab_size, (batch, length))
    type_ids = np.zeros((batch, length), np.int64)
    positions = np.zeros((batch, predictions), np.int64)
    for i, n in enumerate(real):
        token_ids[i, n:] = 0
        type_ids[i, n // 2:n] = 1
        positions[i] = rng.choice(n, predictions, replace=False)
    weights = np.ones((batch, predictions), np.float32)
    weights[-1, -1] = 0.0  # one padding prediction
    return {
        "token_ids": jnp.asarray(token_ids, jnp.int32),
        "type_ids": jnp.asarray(type_ids, jnp.int32),
        "mlm_positions": jnp.asarray(positions, jnp.int32),
        "mlm_targets": jnp.asarray(rng.integers(7, TINY.vocab_size, (batch, predictions)),
                                   jnp.int32),
        "mlm_weights": jnp.asarray(weights),
        "nsp_labels": jnp.asarray(np.arange(batch) % 2, jnp.int32),
    }


# LLVM optimisation is most of the compile time of these tiny programs (a dropout gradient: ~10 s
# at the default level, ~2 s at 0) and adds nothing to what the tests check.
FAST_COMPILE = {"xla_backend_optimization_level": 0}


def jit(fn, **kwargs):
    """``jax.jit`` with the fast-compile options."""
    return jax.jit(fn, compiler_options=FAST_COMPILE, **kwargs)


@functools.cache
def init_params(config: TransformerConfig):
    """Unboxed float32 params of BERT built from ``config`` (cached: configs are hashable)."""
    model = make_model("bert", config)
    init = jit(lambda b: model.init({"params": jax.random.key(0)}, b, deterministic=True))
    return nn.unbox(init(make_batch())["params"])


@functools.cache
def forward(config: TransformerConfig, deterministic: bool = True):
    """Jitted ``(params, batch, dropout_rng) -> outputs`` of BERT built from ``config``."""
    model = make_model("bert", config)
    return jit(lambda p, b, rng: model.apply({"params": p}, b, deterministic=deterministic,
                                            rngs={"dropout": rng}))


@functools.cache
def loss_and_grads(config: TransformerConfig, deterministic: bool = True):
    """Jitted ``params, batch -> ((total_loss, outputs), grads)`` of BERT pretraining.

    Training mode (``deterministic=False``) uses a fixed dropout key, so two models that draw
    their dropout masks identically give identical results.
    """
    model = make_model("bert", config)

    def loss_fn(params, batch):
        out = model.apply({"params": params}, batch, deterministic=deterministic,
                          rngs={"dropout": jax.random.key(7)})
        return total_loss(weighted({"mlm": 1.0, "nsp": 1.0})(out, batch)[0]), out

    return jit(jax.value_and_grad(loss_fn, has_aux=True))
