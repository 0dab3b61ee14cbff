"""Encoder–decoder objective (T5): cross-entropy of the decoder's logits on the target tokens.

One loss for every seq2seq input (span corruption, denoising, translation-style tasks): the data
side decides what the source and the targets are, the batch says it with the keys of
``data/features.py``'s ``seq2seq`` entry, and this scores ``decoder_target_ids`` where
``decoder_weights`` > 0.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax

from objectives import losses


def seq2seq(outputs: Mapping[str, jax.Array], batch: Mapping[str, jax.Array], *,
            label_smoothing: float = 0.0, z_loss: float = 0.0
            ) -> tuple[dict[str, losses.Pair], dict[str, losses.Pair]]:
    """Cross-entropy of ``logits`` [B, T, V] against ``decoder_target_ids`` [B, T].

    Positions with ``decoder_weights`` [B, T] = 0 (padding) do not count; ``z_loss`` (t5x uses
    1e-4) adds ``z_loss · log(Z)²`` to the optimised term, reported as ``seq2seq_z_loss``.

    Returns:
      ``(terms, metrics)``: ``{"seq2seq_loss": (loss_sum, weight_sum)}`` and ``seq2seq_loss``
      (plain cross-entropy per target token), ``seq2seq_accuracy`` as ``(sum, weight)`` pairs.
    """
    return losses.classification(
        "seq2seq", outputs["logits"], batch["decoder_target_ids"], batch["decoder_weights"],
        label_smoothing=label_smoothing, z_loss=z_loss)
