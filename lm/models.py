"""Whole models (body + heads) and the registry that builds one from a config.

Every model's ``__call__(batch, *, deterministic=True)`` takes a batch dict with the keys of
``data/features.py`` and returns a dict of named float32 outputs. Typical use::

    model = make_model("bert", config)
    boxed = model.init({"params": k1, "dropout": k2}, batch, deterministic=True)["params"]
    outputs = model.apply({"params": params}, batch, deterministic=False, rngs={"dropout": k})
"""

from __future__ import annotations

from collections.abc import Mapping

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


ARCHITECTURES: dict[str, type[nn.Module]] = {
    "bert": BertForPretraining,
}


def make_model(arch: str, config: TransformerConfig) -> nn.Module:
    """The pretraining model called ``arch`` built from ``config``.

    Raises:
      KeyError: for an architecture not in ``ARCHITECTURES``.
    """
    if arch not in ARCHITECTURES:
        raise KeyError(f"unknown architecture {arch!r}; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch](config)
