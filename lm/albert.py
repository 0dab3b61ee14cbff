"""ALBERT (Lan et al., 2020): BERT's encoder with a factorised embedding and one shared layer.

Two changes to BERT, both in the parameters, none in the computation of a layer:

* Factorised embedding: the token table is V×E (E ≪ D, logical axes ``(vocab, factor)``) and a
  Dense E→D (``embeddings/embed_project``) maps the embedding sum to the model width
  (``layers.Embeddings`` does this whenever ``embed_dim`` ≠ ``hidden_size``). The tied MLM head
  maps D→E and scores against the same V×E table, so no V×D matrix exists anywhere.
* Cross-layer sharing: one ``TransformerBlock`` (``encoder/shared_layer``) applied N times, so the
  parameter count does not depend on N. With ``scan_layers`` the N applications are one
  ``nn.scan`` whose parameters are broadcast, not stacked: the parameter tree is the same either
  way.

Pretraining heads: the masked LM and any sentence-level classifiers on the pooled [CLS] vector,
e.g. sentence-order prediction (``sop``, 2 classes) or shuffled-segment order recovery
(``order``, one class per permutation). Fine-tuning: BERT's models (``lm/bert.py``) with this
encoder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import flax.linen as nn
import jax

from lm import attention, heads, stack
from lm.bert import BertForClassification, BertForSpanQa
from lm.config import TransformerConfig
from lm.encoder import Encoder, TransformerBlock


class AlbertEncoder(Encoder):
    """BERT's encoder with one block shared by all N layers (and, when E ≠ D, a factorised
    embedding, which the config selects).

    Parameter names: ``embeddings`` (with ``embed_project`` when E ≠ D), ``shared_layer``,
    ``final_norm`` (pre-LN only), ``pooler``.
    """

    def setup_layers(self) -> None:
        """One block applied N times; with ``scan_layers`` an ``nn.scan`` whose ``params`` are
        broadcast (shared) while dropout gets a fresh key at every step."""
        self.shared_layer = stack.make_layers(TransformerBlock, self.config, shared=True)

    def run_layers(self, x_BLD: jax.Array, mask: attention.AttentionMask, deterministic: bool
                   ) -> jax.Array:
        """The shared block N times: [B, L, D] → [B, L, D]."""
        return stack.run_layers(self.shared_layer, self.config, x_BLD, mask, deterministic)[0]


class AlbertForPretraining(nn.Module):
    """ALBERT: shared-layer encoder + tied masked-LM head + sentence-level heads.

    Parameter tree: ``encoder`` (restored alone for fine-tuning), ``mlm_head`` (when ``mlm``), and
    ``{name}_head`` for each sentence head.

    Attributes:
      config: the architecture.
      mlm: whether to build the masked-LM head (needs ``mlm_positions`` in the batch).
      sentence_heads: ``(name, classes)`` of each sentence-level classifier: ``("sop", 2)`` for
        sentence-order prediction and ``("nsp", 2)`` for BERT's next-sentence prediction, on the
        pooled output; ``("order", C)`` for shuffled-segment order recovery, on the pooled output
        and each segment's first and last token (``heads.SegmentOrderHead``).
    """

    config: TransformerConfig
    mlm: bool = True
    sentence_heads: tuple[tuple[str, int], ...] = (("sop", 2),)

    @nn.compact
    def __call__(self, batch: Mapping[str, jax.Array], *, deterministic: bool = True
                 ) -> dict[str, jax.Array]:
        """Pretraining outputs.

        Args:
          batch: ``token_ids``, ``type_ids`` [B, L] and, with ``mlm``, ``mlm_positions`` [B, P].
          deterministic: disables dropout.

        Returns:
          ``mlm_logits`` float32 [B, P, V] (with ``mlm``) and ``{name}_logits`` float32 [B, C] per
          sentence head.
        """
        encoder = AlbertEncoder(self.config, name="encoder")
        x_BLD = encoder(batch, deterministic=deterministic)
        outputs = {}
        if self.mlm:
            outputs["mlm_logits"] = heads.MlmHead(self.config, name="mlm_head")(
                x_BLD, batch["mlm_positions"], encoder.attend)
        # Always pooled, so the pooler exists for fine-tuning even without a sentence head.
        pooled_BD = encoder.pool(x_BLD)
        for name, classes in self.sentence_heads:
            if name == "order":
                outputs["order_logits"] = heads.SegmentOrderHead(
                    self.config, classes, name="order_head")(x_BLD, pooled_BD,
                                                             batch["token_ids"])
            else:
                outputs[f"{name}_logits"] = heads.SentencePairHead(
                    self.config, classes, name=f"{name}_head")(pooled_BD)
        return outputs


class AlbertForClassification(BertForClassification):
    """ALBERT's encoder (shared layer, factorised embedding) + the classification head."""

    encoder_class: ClassVar[type[Encoder]] = AlbertEncoder


class AlbertForSpanQa(BertForSpanQa):
    """ALBERT's encoder + start/end scores per position."""

    encoder_class: ClassVar[type[Encoder]] = AlbertEncoder
