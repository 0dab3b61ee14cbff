"""Masked-language-model objective (BERT, ALBERT)."""

from __future__ import annotations

from collections.abc import Mapping

import jax

from objectives import losses


def mlm(outputs: Mapping[str, jax.Array], batch: Mapping[str, jax.Array], *,
        label_smoothing: float = 0.0, z_loss: float = 0.0
        ) -> tuple[dict[str, losses.Pair], dict[str, losses.Pair]]:
    """Cross-entropy of ``mlm_logits`` [B, P, V] against ``mlm_targets`` [B, P].

    Positions with ``mlm_weights`` [B, P] = 0 (padding predictions) do not count.

    Returns:
      ``(terms, metrics)``: ``{"mlm_loss": (loss_sum, weight_sum)}`` and ``mlm_loss`` (plain
      cross-entropy), ``mlm_accuracy`` as ``(sum, weight)`` pairs.
    """
    return losses.classification(
        "mlm", outputs["mlm_logits"], batch["mlm_targets"], batch["mlm_weights"],
        label_smoothing=label_smoothing, z_loss=z_loss)
