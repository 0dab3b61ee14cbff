"""What a run config means for the model: its architecture config, objective and heads."""

from __future__ import annotations

import json

from data import sentence_order
from lm import config as lm_config
from objectives import COMBINATIONS, OBJECTIVES, weighted


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
    """A pretraining run's objectives → weights: ``cfg.objectives`` without its zero weights, or
    for a config that names one objective (``cfg.objective``) what that objective adds up
    (``bert_pretrain`` = ``{"mlm": 1, "nsp": 1}``)."""
    if "objectives" in cfg:
        return {name: float(w) for name, w in cfg.objectives.items() if w}
    return dict(COMBINATIONS.get(cfg.objective, {cfg.objective: 1.0}))


def run_objective(cfg):
    """The objective function of a pretraining run: ``weighted(cfg.objectives)``, or
    ``OBJECTIVES[cfg.objective]`` for configs without ``objectives`` (BERT's)."""
    if "objectives" in cfg:
        return weighted(cfg.objectives)
    return OBJECTIVES[cfg.objective]


def model_options(cfg) -> dict:
    """The pretraining model's options beyond its architecture: for a config with
    ``objectives`` (ALBERT's), which heads to build (``mlm``, ``sentence_heads``); else none."""
    if "objectives" not in cfg:
        return {}
    names = objective_weights(cfg)
    classes = {"nsp": 2, "sop": 2}
    if "order" in names:
        classes["order"] = sentence_order.num_order_classes(cfg.data.order_max_segments)
    return {"mlm": "mlm" in names,
            "sentence_heads": tuple((n, classes[n]) for n in names if n != "mlm")}
