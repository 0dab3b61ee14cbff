"""Fine-tuning objectives: classification, regression and span QA, weighted by example.

``example_weights`` [B] is 1.0 for a real example and 0.0 for rows that only pad the last eval
batch, so a padded row changes neither the loss nor any metric.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from objectives import losses


def classification(outputs: Mapping[str, jax.Array], batch: Mapping[str, jax.Array], *,
                   label_smoothing: float = 0.0, z_loss: float = 0.0
                   ) -> tuple[dict[str, losses.Pair], dict[str, losses.Pair]]:
    """Cross-entropy of ``logits`` [B, C] against ``labels`` [B].

    Returns:
      ``(terms, metrics)``: ``task_loss`` and ``task_accuracy`` as ``(sum, weight)`` pairs.
    """
    return losses.classification("task", outputs["logits"], batch["labels"],
                                 batch["example_weights"], label_smoothing=label_smoothing,
                                 z_loss=z_loss)


def regression(outputs: Mapping[str, jax.Array], batch: Mapping[str, jax.Array], **_
               ) -> tuple[dict[str, losses.Pair], dict[str, losses.Pair]]:
    """Squared error of ``logits`` [B, 1] against float ``labels`` [B] (STS-B style).

    Returns:
      ``(terms, metrics)``: ``task_loss`` (mean squared error) as a ``(sum, weight)`` pair.
    """
    weights_B = batch["example_weights"]
    error_B = outputs["logits"][:, 0] - batch["labels"].astype(jnp.float32)
    pair = (jnp.sum(jnp.square(error_B) * weights_B), jnp.sum(weights_B))
    return {"task_loss": pair}, {"task_loss": pair}


def span_qa(outputs: Mapping[str, jax.Array], batch: Mapping[str, jax.Array], *,
            label_smoothing: float = 0.0, z_loss: float = 0.0
            ) -> tuple[dict[str, losses.Pair], dict[str, losses.Pair]]:
    """Mean of the start and end cross-entropies over positions (0 = no answer = [CLS]).

    Returns:
      ``(terms, metrics)``: ``task_loss`` (the mean of start and end losses) plus
      ``start_accuracy`` and ``end_accuracy``.
    """
    weights_B = batch["example_weights"]
    kw = dict(label_smoothing=label_smoothing, z_loss=z_loss)
    start_terms, start_metrics = losses.classification(
        "start", outputs["start_logits"], batch["start_positions"], weights_B, **kw)
    end_terms, end_metrics = losses.classification(
        "end", outputs["end_logits"], batch["end_positions"], weights_B, **kw)
    (s_sum, weight), (e_sum, _) = start_terms["start_loss"], end_terms["end_loss"]
    terms = {"task_loss": (0.5 * (s_sum + e_sum), weight)}
    (s_plain, _), (e_plain, _) = start_metrics["start_loss"], end_metrics["end_loss"]
    metrics = {"task_loss": (0.5 * (s_plain + e_plain), weight),
               "start_accuracy": start_metrics["start_accuracy"],
               "end_accuracy": end_metrics["end_accuracy"]}
    return terms, metrics
