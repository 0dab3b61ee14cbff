"""Sentence-level objectives on the pooled output: next-sentence prediction (BERT), sentence-order
prediction (ALBERT) and shuffled-segment order recovery (ERNIE 2.0)."""

from __future__ import annotations

import math
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


def _labelled(name: str, outputs: Mapping[str, jax.Array], batch: Mapping[str, jax.Array],
              label_smoothing: float, z_loss: float
              ) -> tuple[dict[str, losses.Pair], dict[str, losses.Pair]]:
    """Cross-entropy of ``{name}_logits`` [B, C] against ``{name}_labels`` [B], weight 1 each."""
    labels_B = batch[f"{name}_labels"]
    return losses.classification(
        name, outputs[f"{name}_logits"], labels_B, jnp.ones(labels_B.shape, jnp.float32),
        label_smoothing=label_smoothing, z_loss=z_loss)


def sop(outputs: Mapping[str, jax.Array], batch: Mapping[str, jax.Array], *,
        label_smoothing: float = 0.0, z_loss: float = 0.0
        ) -> tuple[dict[str, losses.Pair], dict[str, losses.Pair]]:
    """Sentence-order prediction: ``sop_logits`` [B, 2] against ``sop_labels`` [B] (0 = in
    order, 1 = swapped). Returns ``sop_loss`` and ``sop_accuracy`` like :func:`nsp`."""
    return _labelled("sop", outputs, batch, label_smoothing, z_loss)


def num_order_classes(max_segments: int) -> int:
    """``Σ_{k=1..max_segments} k!``: the classes of order recovery with up to that many segments
    (the class count of the order head)."""
    if max_segments < 1:
        raise ValueError(f"max_segments={max_segments} must be at least 1")
    return sum(math.factorial(k) for k in range(1, max_segments + 1))


def _class_offsets(num_classes: int) -> list[int]:
    """``[1!, 1! + 2!, …]`` up to ``num_classes``: where each segment count's classes end; [] if
    ``num_classes`` is not such a sum."""
    ends, k = [], 1
    while not ends or ends[-1] < num_classes:
        ends.append((ends[-1] if ends else 0) + math.factorial(k))
        k += 1
    return ends if ends[-1] == num_classes else []


def segment_count_classes(token_ids_BL: jax.Array, num_classes: int, sep_id: int) -> jax.Array:
    """bool [B, C]: the order classes possible for each instance, those of its own segment count k
    (one ``sep_id`` token ends each segment, so k is in the input for the model to see too).

    Without this the head must also learn to count [SEP]s, and a model that only counts scores
    Σ_k 1/k! / k_max above 1/C while knowing nothing of order; restricted, chance is 1/k! for
    every k and any gain over it is order recovered.
    """
    ends = _class_offsets(num_classes)
    if not ends:
        raise ValueError(f"{num_classes} order classes is not 1! + 2! + … + k! for any k")
    starts = [0] + ends[:-1]
    k_B = jnp.clip(jnp.sum(token_ids_BL == sep_id, axis=-1), 1, len(ends))
    c_C = jnp.arange(num_classes)
    lo_B, hi_B = jnp.asarray(starts)[k_B - 1], jnp.asarray(ends)[k_B - 1]
    return (c_C >= lo_B[:, None]) & (c_C < hi_B[:, None])


def order(outputs: Mapping[str, jax.Array], batch: Mapping[str, jax.Array], *, sep_id: int,
          label_smoothing: float = 0.0, z_loss: float = 0.0
          ) -> tuple[dict[str, losses.Pair], dict[str, losses.Pair]]:
    """Order recovery: ``order_logits`` [B, C] against ``order_labels`` [B], the class of the
    permutation applied to the segments (``data.sentence_order.permutation_to_class``), among
    the k! classes of the instance's segment count k (:func:`segment_count_classes`: the
    ``sep_id`` tokens of ``token_ids`` [B, L], the id the model's order head finds segments by).

    Returns:
      ``order_loss``, ``order_accuracy`` and, per segment count k, ``order_accuracy_k{k}`` over
      the instances of k segments (chance: 1/k!).
    """
    logits_BC, labels_B = outputs["order_logits"], batch["order_labels"]
    valid_BC = segment_count_classes(batch["token_ids"], logits_BC.shape[-1], sep_id)
    terms, metrics = losses.classification(
        "order", logits_BC, labels_B, jnp.ones(labels_B.shape, jnp.float32),
        label_smoothing=label_smoothing, z_loss=z_loss, valid=valid_BC)
    shown_BC = losses.restrict(logits_BC, valid_BC)
    ends = _class_offsets(logits_BC.shape[-1])
    k_B = jnp.searchsorted(jnp.asarray(ends), labels_B, side="right") + 1
    for k in range(1, len(ends) + 1):
        metrics[f"order_accuracy_k{k}"] = losses.weighted_accuracy(
            shown_BC, labels_B, (k_B == k).astype(jnp.float32))
    return terms, metrics
