"""Permutation-language-model objective (XLNet)."""

from __future__ import annotations

from collections.abc import Mapping

import jax

from objectives import losses


def plm(outputs: Mapping[str, jax.Array], batch: Mapping[str, jax.Array], *,
        label_smoothing: float = 0.0, z_loss: float = 0.0
        ) -> tuple[dict[str, losses.Pair], dict[str, losses.Pair]]:
    """Cross-entropy of ``plm_logits`` [B, P, V] (the query stream) against ``plm_targets``.

    Prediction slots with ``plm_weights`` [B, P] = 0 (unused) do not count.

    Returns:
      ``(terms, metrics)``: ``{"plm_loss": (loss_sum, weight_sum)}`` and ``plm_loss`` (plain
      cross-entropy), ``plm_accuracy`` as ``(sum, weight)`` pairs.
    """
    return losses.classification(
        "plm", outputs["plm_logits"], batch["plm_targets"], batch["plm_weights"],
        label_smoothing=label_smoothing, z_loss=z_loss)
