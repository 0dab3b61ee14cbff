"""What a run config means for the model: its architecture config, objective and heads."""

from __future__ import annotations

import json

from lm import config as lm_config
from objectives import registry


def model_config(cfg, vocab_size: int, special_ids=None) -> lm_config.TransformerConfig:
    """The one place where the run config becomes an architecture config.

    ``special_ids`` (the tokenizer's ``data.features.SpecialIds``) set ``pad_id`` and ``sep_id``
    where the tokenizer has them, over a converted checkpoint's ``model.fields``: the model must
    mask exactly the id the input pipeline pads with (GPT-2's ``<|endoftext|>``, whose config
    has no padding id).
    """
    m = cfg.model
    # ``model.fields``: a converted checkpoint's exact shapes (JSON, see launch/converting.py).
    fields = json.loads(m.get("fields") or "{}")
    if special_ids is not None:
        fields.update({f"{name}_id": getattr(special_ids, name) for name in ("pad", "sep")
                       if getattr(special_ids, name) is not None})
    return lm_config.preset(m.preset, **{
        "vocab_size": vocab_size, "max_length": m.max_length or cfg.data.max_seq_length,
        "dropout_rate": m.dropout_rate, "attention_dropout_rate": m.attention_dropout_rate,
        "norm_position": m.norm_position, "activation": m.activation, "dtype": m.dtype,
        "scan_layers": m.scan_layers, "remat": m.remat, **fields})


def objective_weights(cfg) -> dict[str, float]:
    """A pretraining run's active objectives → weights: ``cfg.objectives`` without its zero
    weights, in its order (``cfg`` a ConfigDict or a workdir's config.json as a dict).

    Raises:
      ValueError: (one line) for a config without ``objectives``, an unknown name, a negative
        weight or none positive.
    """
    if "objectives" not in cfg:
        raise ValueError("the run config has no `objectives` (name → weight, e.g. "
                         "{'mlm': 1.0, 'nsp': 1.0}): not a pretraining config of this version")
    return registry.active_weights(cfg["objectives"])


def is_causal_lm(cfg) -> bool:
    """Whether ``cfg`` (a ConfigDict or a config.json dict) pretrains a causal LM alone (GPT):
    what generation and perplexity need."""
    return "objectives" in cfg and set(objective_weights(cfg)) == {registry.CLM}


def run_objective(cfg, **options):
    """The objective function of a pretraining run: ``weighted(cfg.objectives, **options)``;
    ``options`` as the objectives declare them (``sep_id``: the model's)."""
    return registry.weighted(objective_weights(cfg), **options)


# Architectures whose pretraining model builds the heads its objectives need; the others have
# fixed heads (BERT: MLM + NSP; GPT, XLNet: their LM head).
_HEADS_FROM_OBJECTIVES = ("albert",)


def model_options(cfg) -> dict:
    """The pretraining model's options beyond its architecture: for ALBERT, which heads to build
    (``mlm``, ``sentence_heads`` with each objective's class count); else none."""
    if cfg.model.arch not in _HEADS_FROM_OBJECTIVES:
        return {}
    names = objective_weights(cfg)
    heads = tuple((n, registry.OBJECTIVES[n].head_classes(cfg.data)) for n in names
                  if registry.OBJECTIVES[n].head_classes is not None)
    return {"mlm": registry.MLM in names, "sentence_heads": heads}
