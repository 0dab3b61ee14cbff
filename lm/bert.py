"""BERT (Devlin et al., 2019): the encoder with its pretraining heads (tied masked LM, next
sentence) and its fine-tuning models (classification / regression, span QA).

Every model keeps the encoder under the name ``encoder``: fine-tuning restores that subtree of
the pretraining checkpoint. ALBERT's models (``lm/albert.py``) are these with its own encoder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import flax.linen as nn
import jax

from lm import heads
from lm.config import TransformerConfig
from lm.encoder import Encoder


class BertForPretraining(nn.Module):
    """BERT: encoder + tied masked-LM head + next-sentence head.

    Parameter tree: ``encoder`` (restored alone for fine-tuning), ``mlm_head``, ``nsp_head``.
    """

    config: TransformerConfig

    @nn.compact
    def __call__(self, batch: Mapping[str, jax.Array], *, deterministic: bool = True
                 ) -> dict[str, jax.Array]:
        """Pretraining outputs.

        Args:
          batch: ``token_ids``, ``type_ids`` [B, L] and ``mlm_positions`` [B, P] (int32); optional
            ``positions`` and ``segment_ids`` [B, L] for packed batches.
          deterministic: disables dropout (evaluation); training passes False and a ``dropout``
            rng.

        Returns:
          ``{"mlm_logits": float32 [B, P, V], "nsp_logits": float32 [B, 2]}``.
        """
        encoder = Encoder(self.config, name="encoder")
        x_BLD = encoder(batch, deterministic=deterministic)
        mlm_logits_BPV = heads.MlmHead(self.config, name="mlm_head")(
            x_BLD, batch["mlm_positions"], encoder.attend)
        nsp_logits_BC = heads.SentencePairHead(self.config, 2, name="nsp_head")(
            encoder.pool(x_BLD))
        return {"mlm_logits": mlm_logits_BPV, "nsp_logits": nsp_logits_BC}


class BertForClassification(nn.Module):
    """BERT encoder + a linear head on a pooled vector: classification (C classes) or regression
    (C = 1).

    Parameter tree: ``encoder`` (the pretraining checkpoint's subtree of the same name) and
    ``classifier_head`` (always new).

    Attributes:
      config: the architecture.
      num_outputs: C.
      pooling: ``pooler`` (BERT's tanh layer on [CLS], trained by NSP), ``cls`` (the raw [CLS]
        state) or ``mean`` (the average over real tokens); see ``heads.pooled``.
    """

    config: TransformerConfig
    num_outputs: int
    pooling: str = "pooler"
    encoder_class: ClassVar[type[Encoder]] = Encoder

    @nn.compact
    def __call__(self, batch: Mapping[str, jax.Array], *, deterministic: bool = True
                 ) -> dict[str, jax.Array]:
        """``{"logits": float32 [B, C]}`` from ``token_ids``, ``type_ids`` [B, L]."""
        encoder = self.encoder_class(self.config, name="encoder")
        x_BLD = encoder(batch, deterministic=deterministic)
        pooled_BD = encoder.pool(x_BLD, batch["token_ids"], self.pooling)
        logits_BC = heads.ClassifierHead(self.config, self.num_outputs, name="classifier_head")(
            pooled_BD, deterministic=deterministic)
        return {"logits": logits_BC}


class BertForSpanQa(nn.Module):
    """BERT encoder + start/end scores per position (extractive QA; [CLS] = no answer).

    Parameter tree: ``encoder`` and ``span_head``.
    """

    config: TransformerConfig
    encoder_class: ClassVar[type[Encoder]] = Encoder

    @nn.compact
    def __call__(self, batch: Mapping[str, jax.Array], *, deterministic: bool = True
                 ) -> dict[str, jax.Array]:
        """``{"start_logits", "end_logits"}``, float32 [B, L], padding positions at -1e9."""
        x_BLD = self.encoder_class(self.config, name="encoder")(batch, deterministic=deterministic)
        start_BL, end_BL = heads.SpanHead(self.config, name="span_head")(x_BLD)
        return heads.span_outputs(start_BL, end_BL, batch["token_ids"], self.config.pad_id)
