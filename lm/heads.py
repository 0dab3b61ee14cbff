"""Output heads on top of an encoder: masked LM (tied to the token table), sentence pairs, and the
fine-tuning heads (classification / regression, span QA)."""

from __future__ import annotations

import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from lm import axes, layers
from lm.config import TransformerConfig


def gather_positions(x_BLD: jax.Array, positions_BP: jax.Array) -> jax.Array:
    """Hidden states at the given positions of each sequence: [B, L, D], int [B, P] → [B, P, D]."""
    return jnp.take_along_axis(x_BLD, positions_BP[:, :, None], axis=1)


class MlmHead(nn.Module):
    """Masked-LM head: gather P positions → Dense D→E + activation + LayerNorm → tied logits + bias.

    Only the P gathered positions reach the vocabulary projection, so its cost is B·P·E·V rather
    than B·L·E·V. The output layer is the token table (passed in as ``attend``); this head owns no
    output kernel, only the per-token ``bias`` (vocab,).
    """

    config: TransformerConfig

    @nn.compact
    def __call__(self, x_BLD: jax.Array, positions_BP: jax.Array,
                 attend: Callable[[jax.Array], jax.Array]) -> jax.Array:
        """Logits at the masked positions.

        Args:
          x_BLD: encoder output [B, L, D].
          positions_BP: int [B, P], positions to predict.
          attend: the token embedding's ``attend``: [B, P, E] → float32 [B, P, V].

        Returns:
          float32 [B, P, V].
        """
        cfg = self.config
        x_BPD = gather_positions(x_BLD, positions_BP)
        # The transform's output lives in the token-table width E; ``factor`` names it even when
        # E = D, because (embed, embed) would name one mesh axis twice.
        h_BPE = layers.dense(cfg, cfg.token_embed_dim, (axes.EMBED, axes.FACTOR),
                             name="transform")(x_BPD)
        h_BPE = layers.activation(cfg.activation)(h_BPE)
        h_BPE = layers.layer_norm(cfg, name="transform_norm", axis_name=axes.FACTOR)(h_BPE)
        bias_V = self.param("bias", layers.zeros_init((axes.VOCAB,)), (cfg.vocab_size,),
                            layers.PARAM_DTYPE)
        logits_BPV = attend(h_BPE).astype(jnp.float32) + bias_V
        return nn.with_logical_constraint(logits_BPV, (axes.BATCH, axes.LENGTH, axes.ACT_VOCAB))


class SentencePairHead(nn.Module):
    """A linear classifier on the pooled output (NSP: 2 classes; SOP, sentence order: more).

    Attributes:
      config: supplies the initialiser range and compute dtype.
      num_classes: C.
    """

    config: TransformerConfig
    num_classes: int = 2

    @nn.compact
    def __call__(self, pooled_BD: jax.Array) -> jax.Array:
        """[B, D] → float32 logits [B, C]."""
        logits_BC = layers.dense(self.config, self.num_classes, (axes.EMBED, axes.CLASSES),
                                 name="classifier")(pooled_BD)
        return logits_BC.astype(jnp.float32)


def max_segments(num_classes: int) -> int:
    """k such that ``num_classes`` = 1! + 2! + … + k! (the order-recovery classes).

    Raises:
      ValueError: when ``num_classes`` is no such sum.
    """
    total, k = 0, 0
    while total < num_classes:
        k += 1
        total += math.factorial(k)
    if total != num_classes:
        raise ValueError(f"{num_classes} order classes is not 1! + 2! + … + k! for any k")
    return k


def segment_boundaries(token_ids_BL: jax.Array, sep_id: int, k: int
                       ) -> tuple[jax.Array, jax.Array]:
    """Where each of up to ``k`` segments of ``[CLS] s1 [SEP] s2 [SEP] …`` starts and ends.

    Returns:
      ``(positions_BS, present_BS)``: int [B, 2k], the first token of segments 1..k then their
      last token; bool [B, 2k], False for segments the row does not have (position 0 there).
    """
    sep_BL = token_ids_BL == sep_id
    count_BL = jnp.cumsum(sep_BL, axis=-1)
    # Position of the j-th [SEP] (0 when the row has fewer): argmax of a one-hot row.
    sep_BK = jnp.stack([jnp.argmax(sep_BL & (count_BL == j), axis=-1) for j in range(1, k + 1)],
                       axis=1)
    present_BK = sep_BK > 0
    starts_BK = jnp.concatenate([jnp.ones_like(sep_BK[:, :1]), sep_BK[:, :-1] + 1], axis=1)
    ends_BK = sep_BK - 1
    positions_BS = jnp.where(jnp.tile(present_BK, 2),
                             jnp.concatenate([starts_BK, ends_BK], axis=1), 0)
    return positions_BS, jnp.tile(present_BK, 2)


class SegmentOrderHead(nn.Module):
    """Shuffled-segment order recovery: scores each permutation from the pooled [CLS] vector and
    the first and last token states of every shown segment.

    The permutation shows in how the segments begin and end (a passage starts a sentence and ends
    one; a cut falls mid-sentence), so the head reads those positions directly instead of waiting
    for [CLS] to learn to gather them: a one-layer MLP per slot (shared), then a linear map of
    the 1 + 2k slots to the C classes. Absent segments contribute zeros.

    Attributes:
      config: the architecture (``sep_id`` locates the segments).
      num_classes: C = 1! + … + k! for the largest k.
    """

    config: TransformerConfig
    num_classes: int

    @nn.compact
    def __call__(self, x_BLD: jax.Array, pooled_BD: jax.Array,
                 token_ids_BL: jax.Array) -> jax.Array:
        """[B, L, D], [B, D], int [B, L] → float32 logits [B, C]."""
        cfg = self.config
        k = max_segments(self.num_classes)
        positions_BS, present_BS = segment_boundaries(token_ids_BL, cfg.sep_id, k)
        edges_BSD = gather_positions(x_BLD, positions_BS)
        edges_BSD = jnp.where(present_BS[..., None], edges_BSD, 0).astype(x_BLD.dtype)
        slots_BSD = jnp.concatenate([pooled_BD[:, None].astype(x_BLD.dtype), edges_BSD], axis=1)
        h_BSD = layers.dense(cfg, cfg.hidden_size, (axes.EMBED, axes.MLP), name="slot")(slots_BSD)
        h_BSD = jnp.tanh(h_BSD)
        logits_BC = layers.dense(cfg, self.num_classes, (axes.POS, axes.MLP, axes.CLASSES),
                                 contract=2, name="classifier")(h_BSD)
        return logits_BC.astype(jnp.float32)


class ClassifierHead(nn.Module):
    """Fine-tuning head: dropout, then a linear map of the pooled vector to C scores.

    C = number of classes for classification, 1 for regression.
    """

    config: TransformerConfig
    num_outputs: int

    @nn.compact
    def __call__(self, pooled_BD: jax.Array, *, deterministic: bool) -> jax.Array:
        """[B, D] → float32 [B, C]."""
        x_BD = layers.Dropout(self.config.dropout_rate)(pooled_BD, deterministic=deterministic)
        logits_BC = layers.dense(self.config, self.num_outputs, (axes.EMBED, axes.CLASSES),
                                 name="classifier")(x_BD)
        return logits_BC.astype(jnp.float32)


class SpanHead(nn.Module):
    """Extractive-QA head: start and end scores for every position.

    Position 0 ([CLS]) stands for "no answer", as in BERT's SQuAD 2.0 recipe.
    """

    config: TransformerConfig

    @nn.compact
    def __call__(self, x_BLD: jax.Array) -> tuple[jax.Array, jax.Array]:
        """[B, L, D] → (start_logits, end_logits), each float32 [B, L]."""
        logits_BL2 = layers.dense(self.config, 2, (axes.EMBED, axes.CLASSES),
                                  name="span")(x_BLD).astype(jnp.float32)
        return logits_BL2[..., 0], logits_BL2[..., 1]


def span_outputs(start_BL: jax.Array, end_BL: jax.Array, token_ids_BL: jax.Array, pad_id: int
                 ) -> dict[str, jax.Array]:
    """The span-QA outputs: ``{"start_logits", "end_logits"}`` with padding positions at -1e9.

    Padding can never be an answer; keeping it out of the softmax keeps the loss honest.
    """
    pad_BL = token_ids_BL == pad_id
    return {"start_logits": jnp.where(pad_BL, -1e9, start_BL),
            "end_logits": jnp.where(pad_BL, -1e9, end_BL)}


def mean_pool(x_BLD: jax.Array, token_ids_BL: jax.Array, pad_id: int) -> jax.Array:
    """Mean of the hidden states over the non-padding positions: [B, L, D] → [B, D]."""
    keep_BL1 = (token_ids_BL != pad_id)[..., None].astype(x_BLD.dtype)
    return (x_BLD * keep_BL1).sum(axis=1) / jnp.maximum(keep_BL1.sum(axis=1), 1.0)


def last_token(x_BLD: jax.Array, token_ids_BL: jax.Array, pad_id: int) -> jax.Array:
    """The state of each sequence's last real token: [B, L, D] → [B, D].

    Works with padding on either side: the last position that is not padding (GPT's only token
    that has seen the whole input; XLNet's <cls>).
    """
    length = token_ids_BL.shape[1]
    last_B = length - 1 - jnp.argmax((token_ids_BL != pad_id)[:, ::-1], axis=1)
    return gather_positions(x_BLD, last_B[:, None])[:, 0]


POOLING_METHODS = ("pooler", "cls", "mean", "last")


def pooled(x_BLD: jax.Array, token_ids_BL: jax.Array | None, method: str, *, pad_id: int,
           summary: str = "first", pooler: Callable[[jax.Array], jax.Array] | None = None
           ) -> jax.Array:
    """One vector per sequence for a sentence-level head: [B, L, D] → [B, D].

    Args:
      x_BLD: the body's output.
      token_ids_BL: int [B, L]; only ``mean``, ``last`` and ``summary="last"`` read it (None
        otherwise is fine).
      method: ``pooler`` (tanh(pooler) of the summary token, as BERT's NSP and XLNet's sequence
        summary train it; the raw summary token when the model has no ``pooler``), ``cls`` (the
        summary token's raw state), ``mean`` (the average over real tokens) or ``last`` (the last
        real token).
      pad_id: the padding token id.
      summary: the model's summary token: ``first`` ([CLS], BERT) or ``last`` (the last real
        token, GPT and XLNet).
      pooler: the Dense D→D of the ``pooler`` method, or None.

    Raises:
      ValueError: for an unknown ``method`` or ``summary``.
    """
    if method == "mean":
        return mean_pool(x_BLD, token_ids_BL, pad_id)
    if method == "last":
        return last_token(x_BLD, token_ids_BL, pad_id)
    if method not in POOLING_METHODS:
        raise ValueError(f"unknown pooling {method!r}; use one of {POOLING_METHODS}")
    if summary == "first":
        token_BD = x_BLD[:, 0]
    elif summary == "last":
        token_BD = last_token(x_BLD, token_ids_BL, pad_id)
    else:
        raise ValueError(f"unknown summary token {summary!r}; use 'first' or 'last'")
    if method == "pooler" and pooler is not None:
        return jnp.tanh(pooler(token_BD))
    return token_BD
