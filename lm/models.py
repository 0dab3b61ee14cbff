"""The registry: builds a whole model (body + heads) of a family from a config.

Each family's models live in its own file (``lm/bert.py``, ``lm/albert.py``, ``lm/gpt.py``,
``lm/xlnet.py``, ``lm/t5.py``), built from the shared blocks.

Every model's ``__call__(batch, *, deterministic=True)`` takes a batch dict with the keys of
``data/features.py`` and returns a dict of named float32 outputs. Typical use::

    model = make_model("bert", config)
    boxed = model.init({"params": k1, "dropout": k2}, batch, deterministic=True)["params"]
    outputs = model.apply({"params": params}, batch, deterministic=False, rngs={"dropout": k})
"""

from __future__ import annotations

import flax.linen as nn

from lm.albert import AlbertForClassification, AlbertForPretraining, AlbertForSpanQa
from lm.bert import BertForClassification, BertForPretraining, BertForSpanQa
from lm.config import TransformerConfig
from lm.gpt import GptForClassification, GptForPretraining
from lm.t5 import T5ForClassification, T5ForPretraining
from lm.xlnet import XLNetForClassification, XLNetForPretraining, XLNetForSpanQa

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "bert": BertForPretraining,
    "gpt": GptForPretraining,
    "albert": AlbertForPretraining,
    "xlnet": XLNetForPretraining,
    "t5": T5ForPretraining,
}

# The poolings a fine-tuning config may name (see ``heads.pooled``).
POOLINGS = ("pooler", "cls", "mean")

# kind → model class; every fine-tuning model keeps its pretrained body under the names of
# ``body_groups(arch)``: "encoder", and T5's shared token table "shared" beside it.
FINETUNE_MODELS: dict[str, dict[str, type[nn.Module]]] = {
    "bert": {"classification": BertForClassification, "regression": BertForClassification,
             "span_qa": BertForSpanQa},
    "gpt": {"classification": GptForClassification, "regression": GptForClassification},
    "albert": {"classification": AlbertForClassification, "regression": AlbertForClassification,
               "span_qa": AlbertForSpanQa},
    "xlnet": {"classification": XLNetForClassification, "regression": XLNetForClassification,
              "span_qa": XLNetForSpanQa},
    "t5": {"classification": T5ForClassification, "regression": T5ForClassification},
}


def body_groups(arch: str) -> tuple[str, ...]:
    """The top-level parameter groups a fine-tuning model of ``arch`` takes from a pretraining
    checkpoint (the rest of it, heads and T5's decoder, is left there)."""
    return ("shared", "encoder") if arch == "t5" else ("encoder",)


def make_finetune_model(arch: str, config: TransformerConfig, kind: str, *,
                        num_classes: int = 0, pooling: str = "pooler") -> nn.Module:
    """The fine-tuning model for a task of ``kind`` (classification / regression / span_qa).

    Raises:
      ValueError: for an architecture or kind without a fine-tuning model (e.g. T5 span QA:
        T5 generates answers, ``launch/finetuning/seq2seq.py``).
    """
    if arch not in FINETUNE_MODELS or kind not in FINETUNE_MODELS[arch]:
        hint = (" (T5 answers questions by generating them: finetune.py:qa_disflqa_generative)"
                if arch == "t5" else "")
        raise ValueError(f"no fine-tuning model for arch={arch!r}, kind={kind!r}{hint}; known: "
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
