"""Weighted classification losses and metrics, returned as sums with their weights.

Sums (never means) so that gradient accumulation and multi-host aggregation stay exact: divide
once, at the end (``total_loss``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp

# A loss term or metric: (weighted sum, sum of weights).
Pair = tuple[jax.Array, jax.Array]


def _xlogx(x: float) -> float:
    return x * math.log(x) if x > 0 else 0.0


@jax.custom_vjp
def log_z_and_true_logit(logits: jax.Array, targets: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(logsumexp(logits), logits[target])`` over the last axis, with a fused gradient.

    The cross-entropy ``log_z - true`` differentiated by JAX materialises the gradient of the
    target gather as a scattered [..., V] array, and the softmax's as another pass; here the
    gradient is ``g_z · softmax + g_true · one_hot`` in one pass over the logits (an MLM head's
    [P, V] is the largest array of a BERT step after the embeddings).

    Args:
      logits: float32 [..., V].
      targets: int32 [...].
    """
    log_z = jax.nn.logsumexp(logits, axis=-1)
    true = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    return log_z, true


def _log_z_and_true_logit_fwd(logits, targets):
    log_z, true = log_z_and_true_logit(logits, targets)
    return (log_z, true), (logits, targets, log_z)


def _log_z_and_true_logit_bwd(residuals, cotangents):
    logits, targets, log_z = residuals
    g_z, g_true = cotangents
    hit = jax.lax.broadcasted_iota(jnp.int32, logits.shape, logits.ndim - 1) == targets[..., None]
    d_logits = (g_z[..., None] * jnp.exp(logits - log_z[..., None]) +
                jnp.where(hit, g_true[..., None], 0.0))
    return d_logits, None


log_z_and_true_logit.defvjp(_log_z_and_true_logit_fwd, _log_z_and_true_logit_bwd)


def weighted_cross_entropy(logits: jax.Array, targets: jax.Array, weights: jax.Array, *,
                           label_smoothing: float = 0.0, z_loss: float = 0.0,
                           valid: jax.Array | None = None
                           ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Summed, weighted softmax cross-entropy, in float32.

    With label smoothing the target puts ``1 - label_smoothing`` on the true class and spreads
    ``label_smoothing`` over the other V - 1; the entropy of that target is subtracted so that a
    perfect prediction scores 0. The z-loss ``z_loss · log(Z)²`` keeps the softmax normaliser near
    1 (PaLM, t5x).

    Args:
      logits: [..., V].
      targets: int [...].
      weights: float [...]; 0 drops a position.
      label_smoothing: probability mass moved off the true class.
      z_loss: coefficient of the log-normaliser penalty.
      valid: optional bool [..., V]: the classes possible for each example (the true one among
        them). The others get no probability, in the softmax and in the smoothed target alike.

    Returns:
      ``(loss_sum, z_loss_sum, weight_sum)``, float32 scalars; ``loss_sum`` includes the z-loss.
    """
    if valid is not None:
        return _restricted_cross_entropy(logits, targets, weights, valid,
                                         label_smoothing=label_smoothing, z_loss=z_loss)
    logits = logits.astype(jnp.float32)
    weights = weights.astype(jnp.float32)
    vocab = logits.shape[-1]
    confidence = 1.0 - label_smoothing
    low = label_smoothing / (vocab - 1) if vocab > 1 else 0.0
    min_entropy = -(_xlogx(confidence) + (vocab - 1) * _xlogx(low))

    log_z, true_logit = log_z_and_true_logit(logits, targets.astype(jnp.int32))
    # Written without a one-hot [..., V] target: soft = low everywhere + (confidence - low) on the
    # true class.
    loss = -(confidence - low) * (true_logit - log_z) - min_entropy
    if low:  # Σ_v log p_v = Σ_v logits_v - V · log Z
        loss = loss - low * (jnp.sum(logits, axis=-1) - vocab * log_z)
    z_term = z_loss * jnp.square(log_z)
    return (jnp.sum((loss + z_term) * weights), jnp.sum(z_term * weights), jnp.sum(weights))


def restrict(logits: jax.Array, valid: jax.Array) -> jax.Array:
    """``logits`` in float32 with the classes outside ``valid`` pushed to -1e30 (probability 0,
    never the argmax while one valid class remains)."""
    return jnp.where(valid, logits.astype(jnp.float32), -1e30)


def _restricted_cross_entropy(logits, targets, weights, valid, *, label_smoothing, z_loss):
    """:func:`weighted_cross_entropy` over each example's ``valid`` classes only: n of them, the
    smoothed target spreads ``label_smoothing`` over the n - 1 others (none when n = 1)."""
    logits = restrict(logits, valid)
    weights = weights.astype(jnp.float32)
    n = jnp.sum(valid, axis=-1).astype(jnp.float32)
    confidence = jnp.where(n > 1, 1.0 - label_smoothing, 1.0)
    low = jnp.where(n > 1, label_smoothing / jnp.maximum(n - 1, 1.0), 0.0)

    def xlogx(x):
        return jnp.where(x > 0, x * jnp.log(jnp.where(x > 0, x, 1.0)), 0.0)

    min_entropy = -(xlogx(confidence) + (n - 1) * xlogx(low))
    log_z = jax.nn.logsumexp(logits, axis=-1)
    log_probs = logits - log_z[..., None]
    true_log_prob = jnp.take_along_axis(log_probs, targets[..., None].astype(jnp.int32),
                                        axis=-1)[..., 0]
    valid_sum = jnp.sum(jnp.where(valid, log_probs, 0.0), axis=-1)
    loss = -(confidence - low) * true_log_prob - low * valid_sum - min_entropy
    z_term = z_loss * jnp.square(log_z)
    return (jnp.sum((loss + z_term) * weights), jnp.sum(z_term * weights), jnp.sum(weights))


def weighted_accuracy(logits: jax.Array, targets: jax.Array, weights: jax.Array) -> Pair:
    """Weighted count of argmax hits.

    Args:
      logits: [..., V].
      targets: int [...].
      weights: float [...].

    Returns:
      ``(correct_sum, weight_sum)``, float32 scalars.
    """
    weights = weights.astype(jnp.float32)
    hits = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
    return jnp.sum(hits * weights), jnp.sum(weights)


def classification(name: str, logits: jax.Array, targets: jax.Array, weights: jax.Array, *,
                   label_smoothing: float = 0.0, z_loss: float = 0.0,
                   valid: jax.Array | None = None
                   ) -> tuple[dict[str, Pair], dict[str, Pair]]:
    """Loss term and metrics of one classification objective, keyed ``{name}_loss`` etc.

    The optimised term may include label smoothing and z-loss; the reported ``{name}_loss``
    metric is the plain cross-entropy, so runs stay comparable (and exp of it is perplexity).
    ``valid`` (bool [..., C]) restricts each example to its possible classes, in the loss and in
    the accuracy's argmax (:func:`weighted_cross_entropy`).

    Returns:
      ``(terms, metrics)``: ``terms = {name_loss: (loss_sum, weight_sum)}``, ``metrics`` adds
      ``{name}_accuracy`` and, when ``z_loss`` > 0, ``{name}_z_loss``.
    """
    loss_sum, z_sum, weight_sum = weighted_cross_entropy(
        logits, targets, weights, label_smoothing=label_smoothing, z_loss=z_loss, valid=valid)
    if label_smoothing or z_loss:
        plain_sum, _, _ = weighted_cross_entropy(logits, targets, weights, valid=valid)
    else:
        plain_sum = loss_sum
    terms = {f"{name}_loss": (loss_sum, weight_sum)}
    shown = logits if valid is None else restrict(logits, valid)
    metrics = {f"{name}_loss": (plain_sum, weight_sum),
               f"{name}_accuracy": weighted_accuracy(shown, targets, weights)}
    if z_loss:
        metrics[f"{name}_z_loss"] = (z_sum, weight_sum)
    return terms, metrics


def total_loss(terms: Mapping[str, Pair]) -> jax.Array:
    """The optimised scalar: ``Σ loss_sum / weight_sum`` over terms (BERT: mean MLM + mean NSP).

    A term with no weight contributes 0 (its loss sum is 0 and its divisor is clamped at 1e-8).
    """
    total = jnp.zeros((), jnp.float32)
    for loss_sum, weight_sum in terms.values():
        total = total + loss_sum / jnp.maximum(weight_sum, 1e-8)
    return total
