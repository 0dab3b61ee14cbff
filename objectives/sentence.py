"""Sentence-pair objectives: next-sentence prediction (BERT) and, later, sentence order."""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from objectives import losses


def nsp(outputs: Mapping[str, jax.Array], batch: Mapping[str, jax.Array], *,
        label_smoothing: float = 0.0, z_loss: float = 0.0
        ) -> tuple[dict[str, losses.Pair], dict[str, losses.Pair]]:
    """Cross-entropy of ``nsp_logits`` [B, 2] against ``nsp_labels`` [B] (0 = is next).

    Every example counts once (weight 1).

    Returns:
      ``(terms, metrics)``: ``{"nsp_loss": (loss_sum, weight_sum)}`` and ``nsp_loss``,
      ``nsp_accuracy`` as ``(sum, weight)`` pairs.
    """
    labels_B = batch["nsp_labels"]
    return losses.classification(
        "nsp", outputs["nsp_logits"], labels_B, jnp.ones(labels_B.shape, jnp.float32),
        label_smoothing=label_smoothing, z_loss=z_loss)
