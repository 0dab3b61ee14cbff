"""XLNet fine-tuning models: sequence summary + classifier, and a span (QA) head.

Both run the content stream only (no permutation, every real token visible) and keep the body
under ``encoder``, the subtree ``XLNetForPretraining`` saves, so fine-tuning restores it.
"""

from __future__ import annotations

from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from lm import axes, heads, layers
from lm.config import TransformerConfig
from lm.xlnet import XLNetEncoder


def last_token(x_BLD: jax.Array, token_ids_BL: jax.Array, pad_id: int) -> jax.Array:
    """The state of each sequence's last real token (XLNet's <cls>): [B, L, D] → [B, D].

    Works with padding on either side: the last position that is not padding.
    """
    length = token_ids_BL.shape[1]
    last_B = length - 1 - jnp.argmax((token_ids_BL != pad_id)[:, ::-1], axis=1)
    return heads.gather_positions(x_BLD, last_B[:, None])[:, 0]


class XLNetForClassification(nn.Module):
    """XLNet + sequence summary + linear head: classification (C classes) or regression (C = 1).

    Attributes:
      config: the architecture.
      num_outputs: C.
      pooling: ``pooler`` (XLNet's summary: tanh(Dense) of the last real token), ``cls`` (that
        token's raw state) or ``mean`` (the average over real tokens).
    """

    config: TransformerConfig
    num_outputs: int
    pooling: str = "pooler"

    @nn.compact
    def __call__(self, batch: Mapping[str, jax.Array], *, deterministic: bool = True
                 ) -> dict[str, jax.Array]:
        """``{"logits": float32 [B, C]}`` from ``token_ids``, ``type_ids`` [B, L]."""
        cfg = self.config
        inputs = {k: batch[k] for k in ("token_ids", "type_ids") if k in batch}
        x_BLD = XLNetEncoder(cfg, name="encoder")(inputs, deterministic=deterministic)["content"]
        if self.pooling == "mean":
            pooled_BD = heads.mean_pool(x_BLD, batch["token_ids"], cfg.pad_id)
        else:
            pooled_BD = last_token(x_BLD, batch["token_ids"], cfg.pad_id)
        if self.pooling == "pooler":
            pooled_BD = jnp.tanh(layers.dense(cfg, cfg.hidden_size, (axes.EMBED, axes.MLP),
                                              name="summary")(pooled_BD))
        logits_BC = heads.ClassifierHead(cfg, self.num_outputs, name="classifier_head")(
            pooled_BD, deterministic=deterministic)
        return {"logits": logits_BC}


class XLNetForSpanQa(nn.Module):
    """XLNet + start/end scores per position (extractive QA; the data's no-answer position,
    0, stays the "no answer" slot)."""

    config: TransformerConfig

    @nn.compact
    def __call__(self, batch: Mapping[str, jax.Array], *, deterministic: bool = True
                 ) -> dict[str, jax.Array]:
        """``{"start_logits", "end_logits"}``, float32 [B, L], padding positions at -1e9."""
        inputs = {k: batch[k] for k in ("token_ids", "type_ids") if k in batch}
        x_BLD = XLNetEncoder(self.config, name="encoder")(
            inputs, deterministic=deterministic)["content"]
        start_BL, end_BL = heads.SpanHead(self.config, name="span_head")(x_BLD)
        pad_BL = batch["token_ids"] == self.config.pad_id
        return {"start_logits": jnp.where(pad_BL, -1e9, start_BL),
                "end_logits": jnp.where(pad_BL, -1e9, end_BL)}
