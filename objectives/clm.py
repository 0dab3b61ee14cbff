"""Causal-language-model objective (GPT): next-token cross-entropy at every weighted position."""

from __future__ import annotations

from collections.abc import Mapping

import jax

from objectives import losses


def clm(outputs: Mapping[str, jax.Array], batch: Mapping[str, jax.Array], *,
        label_smoothing: float = 0.0, z_loss: float = 0.0
        ) -> tuple[dict[str, losses.Pair], dict[str, losses.Pair]]:
    """Cross-entropy of ``logits`` [B, L, V] against ``clm_targets`` [B, L].

    Positions with ``clm_weights`` [B, L] = 0 (padding, the last token of each packed document)
    do not count. ``exp(clm_loss)`` is the per-token perplexity.

    Returns:
      ``(terms, metrics)``: ``{"clm_loss": (loss_sum, weight_sum)}`` and ``clm_loss`` (plain
      cross-entropy), ``clm_accuracy`` as ``(sum, weight)`` pairs.
    """
    return losses.classification(
        "clm", outputs["logits"], batch["clm_targets"], batch["clm_weights"],
        label_smoothing=label_smoothing, z_loss=z_loss)
