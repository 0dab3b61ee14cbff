"""What a run config means for the model: its architecture config, objective and heads."""

from __future__ import annotations

from lm import config as lm_config
from objectives import registry

# The model section's fields that say what the parameters are: a checkpoint holds a model of
# exactly these (fine-tuning takes them from the pretraining run; see launch/finetuning/setup.py).
ARCHITECTURE_FIELDS = ("arch", "vocab_size", "hidden_size", "num_layers", "num_heads", "mlp_dim",
                       "max_length", "type_vocab_size", "activation", "norm_position",
                       "layer_norm_eps", "initializer_range")
# How a run computes with them: each run states its own.
COMPUTE_FIELDS = ("dropout_rate", "attention_dropout_rate", "dtype", "scan_layers", "remat",
                  "attention_impl")
# Compute fields added since: a workdir's config.json from before one lacks it, and its run
# computed as this value does.
ADDED_COMPUTE_FIELDS = {"attention_impl": "xla"}
# Stated only where they apply: ALBERT's embed_dim; a converted checkpoint's head_dim and pad_id;
# T5's head_dim and lm_config.SEQ2SEQ_FIELDS (decoder layers, relative-position buckets).
# Absent, TransformerConfig derives them (E = D, K = D / H) or the tokenizer gives them.
OPTIONAL_FIELDS = ("embed_dim", "head_dim", "pad_id", "sep_id", *lm_config.SEQ2SEQ_FIELDS)


def model_config(cfg, tokenizer_size: int, special_ids=None) -> lm_config.TransformerConfig:
    """The one place where the run config becomes an architecture config: ``cfg.model`` field by
    field (``ARCHITECTURE_FIELDS``, ``COMPUTE_FIELDS``, and any ``OPTIONAL_FIELDS`` it states).

    Args:
      cfg: a run config (its ``model`` and ``data`` sections).
      tokenizer_size: the ids of the run's tokenizer; ``model.vocab_size`` may exceed it (rows no
        id looks up, as vocabularies padded to a round size), never fall short of it.
      special_ids: the tokenizer's ``data.features.SpecialIds``; they set ``pad_id`` and
        ``sep_id`` where the tokenizer has them, over the model section's: the model must mask
        exactly the id the input pipeline pads with (GPT-2's ``<|endoftext|>``, whose config has
        no padding id).

    Raises:
      ValueError: in one line, when the model section lacks a field, the tokenizer has more ids
        than ``model.vocab_size``, or ``data.max_seq_length`` exceeds ``model.max_length``.
    """
    m = cfg.model
    names = [f for f in ARCHITECTURE_FIELDS + COMPUTE_FIELDS if f != "arch"]
    missing = [f for f in names if f not in m and f not in ADDED_COMPUTE_FIELDS]
    if missing:
        raise ValueError(f"the run config's model section lacks {', '.join(missing)}; every "
                         "run config states them (see launch/configs/bert.py)")
    fields = {f: m.get(f, ADDED_COMPUTE_FIELDS.get(f))
              for f in names + [f for f in OPTIONAL_FIELDS if f in m]}
    if special_ids is not None:
        fields.update({f"{name}_id": getattr(special_ids, name) for name in ("pad", "sep")
                       if getattr(special_ids, name) is not None})
    if tokenizer_size > m.vocab_size:
        raise ValueError(
            f"the tokenizer {cfg.data.tokenizer} has {tokenizer_size} ids but model.vocab_size="
            f"{m.vocab_size}; set --config.model.vocab_size={tokenizer_size} (or more)")
    if cfg.data.max_seq_length > m.max_length:
        raise ValueError(
            f"data.max_seq_length={cfg.data.max_seq_length} exceeds the model's position table "
            f"(model.max_length={m.max_length}); set --config.model.max_length="
            f"{cfg.data.max_seq_length} or --config.data.max_seq_length={m.max_length} or less")
    return lm_config.TransformerConfig(**fields)


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
