"""GPT models: the decoder with its tied LM head (pretraining, decoding) and with a classifier.

The decoder's parameter group is named ``encoder``, the stack-wide name of a model's body: it is
the subtree ``launch.finetuning.setup.load_pretrained`` restores and layer-wise decay scales.
"""

from __future__ import annotations

from collections.abc import Mapping

import flax.linen as nn
import jax

from lm import axes, heads
from lm.config import TransformerConfig
from lm.decoder import Decoder


class GptForPretraining(nn.Module):
    """GPT: decoder + tied LM head (``logits = x · token_embeddingᵀ``, no output bias).

    Parameter tree: ``encoder`` (the decoder) only.
    """

    config: TransformerConfig

    def setup(self):
        self.encoder = Decoder(self.config)

    def __call__(self, batch: Mapping[str, jax.Array], *, deterministic: bool = True
                 ) -> dict[str, jax.Array]:
        """Next-token logits at every position.

        Args:
          batch: ``token_ids`` [B, L]; optional ``segment_ids`` and ``positions`` [B, L] (packed
            documents attend only within themselves).
          deterministic: disables dropout.

        Returns:
          ``{"logits": float32 [B, L, V]}``.
        """
        x_BLD = self.encoder(batch, deterministic=deterministic)
        logits_BLV = self.encoder.attend(x_BLD)
        return {"logits": nn.with_logical_constraint(
            logits_BLV, (axes.BATCH, axes.LENGTH, axes.ACT_VOCAB))}

    def extend(self, token_ids_BL: jax.Array, positions_BL: jax.Array, is_real_BL: jax.Array,
               cache: dict) -> tuple[jax.Array, dict]:
        """Decoding: appends L tokens to ``cache`` (``lm.decoder.init_cache``).

        Returns:
          ``(logits float32 [B, L, V], cache)``.
        """
        x_BLD, cache = self.encoder.extend(token_ids_BL, positions_BL, is_real_BL, cache)
        return self.encoder.attend(x_BLD), cache


class GptForClassification(nn.Module):
    """GPT decoder + a linear head on the last real token (the only one that has seen the whole
    input); ``pooling="mean"`` averages the real tokens instead. ``last``, ``cls`` and the
    fine-tuning default ``pooler`` (GPT has no pooler layer) all mean the last token.

    Parameter tree: ``encoder`` (restored from a GPT pretraining run) and ``classifier_head``.
    """

    config: TransformerConfig
    num_outputs: int
    pooling: str = "last"

    @nn.compact
    def __call__(self, batch: Mapping[str, jax.Array], *, deterministic: bool = True
                 ) -> dict[str, jax.Array]:
        """``{"logits": float32 [B, C]}`` from right-padded ``token_ids`` [B, L]."""
        cfg = self.config
        x_BLD = Decoder(cfg, name="encoder")(batch, deterministic=deterministic)
        # No pooler: ``pooler`` and ``cls`` mean the summary token itself, the last real token.
        pooled_BD = heads.pooled(x_BLD, batch["token_ids"], self.pooling, pad_id=cfg.pad_id,
                                 summary="last")
        logits_BC = heads.ClassifierHead(cfg, self.num_outputs, name="classifier_head")(
            pooled_BD, deterministic=deterministic)
        return {"logits": logits_BC}
