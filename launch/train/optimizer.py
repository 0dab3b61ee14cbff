"""The optimizer: AdamW with warmup and linear decay, no decay on norms and biases."""

from __future__ import annotations

import jax
import optax


def learning_rate_schedule(cfg_train) -> optax.Schedule:
    """Linear warmup from 0 to the peak, then linear decay to `end_learning_rate`."""
    warmup = optax.linear_schedule(0.0, cfg_train.learning_rate, max(1, cfg_train.warmup_steps))
    decay = optax.linear_schedule(cfg_train.learning_rate, cfg_train.end_learning_rate,
                                  max(1, cfg_train.steps - cfg_train.warmup_steps))
    return optax.join_schedules([warmup, decay], [cfg_train.warmup_steps])


def _decays(path, _) -> bool:
    # Biases and LayerNorm scales are not decayed (BERT); decided by name, not ndim, because
    # scanned layers stack 1-D biases into 2-D arrays.
    name = str(getattr(path[-1], "key", path[-1])).lower()
    return not ("bias" in name or "scale" in name)


def make_optimizer(cfg_train) -> optax.GradientTransformation:
    """AdamW with warmup + linear decay, no decay on norms and biases, global-norm clipping."""
    return optax.chain(
        optax.clip_by_global_norm(cfg_train.grad_clip_norm),
        optax.adamw(learning_rate_schedule(cfg_train), b1=cfg_train.adam_b1,
                    b2=cfg_train.adam_b2, eps=cfg_train.adam_eps,
                    weight_decay=cfg_train.weight_decay,
                    mask=lambda p: jax.tree_util.tree_map_with_path(_decays, p)))
