"""Whole models (body + heads) and the registry that builds one from a config.

Every model's ``__call__(batch, *, deterministic=True)`` takes a batch dict with the keys of
``data/features.py`` and returns a dict of named float32 outputs. Typical use::

    model = make_model("bert", config)
    boxed = model.init({"params": k1, "dropout": k2}, batch, deterministic=True)["params"]
    outputs = model.apply({"params": params}, batch, deterministic=False, rngs={"dropout": k})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from lm import heads
from lm.albert import AlbertEncoder, AlbertForPretraining
from lm.config import TransformerConfig
from lm.encoder import Encoder
from lm.gpt import GptForClassification, GptForPretraining
from lm.xlnet import XLNetForPretraining
from lm.xlnet_finetune import XLNetForClassification, XLNetForSpanQa


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
    "gpt": GptForPretraining,
    "albert": AlbertForPretraining,
    "xlnet": XLNetForPretraining,
}

POOLINGS = ("pooler", "cls", "mean")


def _pool(encoder: Encoder, x_BLD: jax.Array, token_ids_BL: jax.Array, pooling: str) -> jax.Array:
    if pooling == "pooler":
        return encoder.pool(x_BLD)
    if pooling == "cls":
        return x_BLD[:, 0]
    if pooling == "mean":
        return heads.mean_pool(x_BLD, token_ids_BL, encoder.config.pad_id)
    raise ValueError(f"unknown pooling {pooling!r}; use one of {POOLINGS}")


class BertForClassification(nn.Module):
    """BERT encoder + a linear head on a pooled vector: classification (C classes) or regression
    (C = 1).

    Parameter tree: ``encoder`` (the pretraining checkpoint's subtree of the same name) and
    ``classifier_head`` (always new).

    Attributes:
      config: the architecture.
      num_outputs: C.
      pooling: ``pooler`` (BERT's tanh layer on [CLS], trained by NSP), ``cls`` (the raw [CLS]
        state) or ``mean`` (the average over real tokens).
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
        pooled_BD = _pool(encoder, x_BLD, batch["token_ids"], self.pooling)
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
        # Padding can never be an answer; keeping it out of the softmax keeps the loss honest.
        pad_BL = batch["token_ids"] == self.config.pad_id
        return {"start_logits": jnp.where(pad_BL, -1e9, start_BL),
                "end_logits": jnp.where(pad_BL, -1e9, end_BL)}


class AlbertForClassification(BertForClassification):
    """ALBERT's encoder (shared layer, factorised embedding) + the classification head."""

    encoder_class: ClassVar[type[Encoder]] = AlbertEncoder


class AlbertForSpanQa(BertForSpanQa):
    """ALBERT's encoder + start/end scores per position."""

    encoder_class: ClassVar[type[Encoder]] = AlbertEncoder


# kind → model class; every fine-tuning model keeps the encoder under the name "encoder".
FINETUNE_MODELS: dict[str, dict[str, type[nn.Module]]] = {
    "bert": {"classification": BertForClassification, "regression": BertForClassification,
             "span_qa": BertForSpanQa},
    "gpt": {"classification": GptForClassification, "regression": GptForClassification},
    "albert": {"classification": AlbertForClassification, "regression": AlbertForClassification,
               "span_qa": AlbertForSpanQa},
    "xlnet": {"classification": XLNetForClassification, "regression": XLNetForClassification,
              "span_qa": XLNetForSpanQa},
}


def make_finetune_model(arch: str, config: TransformerConfig, kind: str, *,
                        num_classes: int = 0, pooling: str = "pooler") -> nn.Module:
    """The fine-tuning model for a task of ``kind`` (classification / regression / span_qa).

    Raises:
      KeyError: for an architecture or kind without a fine-tuning model.
    """
    if arch not in FINETUNE_MODELS or kind not in FINETUNE_MODELS[arch]:
        raise KeyError(f"no fine-tuning model for arch={arch!r}, kind={kind!r}; known: "
                       f"{ {a: sorted(k) for a, k in FINETUNE_MODELS.items()} }")
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; use one of {POOLINGS}")
    model_class = FINETUNE_MODELS[arch][kind]
    if kind == "span_qa":
        return model_class(config)
    return model_class(config, 1 if kind == "regression" else num_classes, pooling)


def make_model(arch: str, config: TransformerConfig, **options) -> nn.Module:
    """The pretraining model called ``arch`` built from ``config`` (and the model's own
    ``options``, e.g. ALBERT's ``sentence_heads``).

    Raises:
      KeyError: for an architecture not in ``ARCHITECTURES``.
    """
    if arch not in ARCHITECTURES:
        raise KeyError(f"unknown architecture {arch!r}; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch](config, **options)
