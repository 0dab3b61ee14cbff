"""XLNet ↔ transformers' ``XLNetLMHeadModel``.

Example::

    config = config_from_hf(hf_model.config.to_dict())
    params = params_from_hf(hf_model.state_dict(), config)
    logits = make_model("xlnet", config).apply({"params": params}, batch)["plm_logits"]
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from lm.config import TransformerConfig
from lm.interop import maps
from lm.interop.bert import dense, norm
from lm.interop.maps import Rule

MODEL_TYPE = "xlnet"
ARCH = "xlnet"
HF_ARCHITECTURE = "XLNetLMHeadModel"
NAME = "XLNet"
ARCHITECTURES = ("XLNetModel", "XLNetLMHeadModel")
PARTS = [("encoder", "encoder/"), ("LM head bias", "lm_head/")]


def config_from_hf(hf: Mapping, source: str = "config.json") -> TransformerConfig:
    """Our architecture config from an ``XLNetConfig`` dict (``source`` named in errors).

    Raises:
      ValueError: naming a missing or malformed setting, or an XLNet variant our model does not
        implement.
    """
    s = maps.Settings(hf, source, "XLNet")
    s.require({"attn_type": "bi", "bi_data": False, "same_length": False, "untie_r": True})
    if (clamp_len := s.integer("clamp_len", -1)) > 0:
        raise ValueError(f"{source}: XLNet settings pretrax does not implement: clamp_len="
                         f"{clamp_len} (supported: -1)")
    dropout = s.rate("dropout", maps.REQUIRED)
    return TransformerConfig(
        vocab_size=s.count("vocab_size"), hidden_size=s.count("d_model"),
        num_layers=s.count("n_layer"), num_heads=s.count("n_head"), mlp_dim=s.count("d_inner"),
        head_dim=s.count("d_head"), dropout_rate=dropout, attention_dropout_rate=dropout,
        activation=s.activation("ff_activation", maps.REQUIRED),
        layer_norm_eps=s.scale("layer_norm_eps", maps.REQUIRED),
        initializer_range=s.scale("initializer_range", maps.REQUIRED),
        pad_id=s.token_id("pad_token_id", 5))


def config_to_hf(c: TransformerConfig) -> dict:
    """An ``XLNetConfig`` dict for ``c`` (no memory, bidirectional, untied relative biases)."""
    return {"architectures": [HF_ARCHITECTURE], "model_type": MODEL_TYPE,
            "vocab_size": c.vocab_size, "d_model": c.hidden_size, "n_layer": c.num_layers,
            "n_head": c.num_heads, "d_head": c.kv_dim, "d_inner": c.mlp_dim,
            "ff_activation": maps.ACTIVATION_TO_HF[c.activation], "dropout": c.dropout_rate,
            "layer_norm_eps": c.layer_norm_eps, "initializer_range": c.initializer_range,
            "pad_token_id": c.pad_id, "attn_type": "bi", "bi_data": False, "clamp_len": -1,
            "same_length": False, "untie_r": True, "mem_len": None, "tie_word_embeddings": True,
            "dtype": "float32"}


def rules(c: TransformerConfig) -> list[Rule]:
    """Every parameter of ``XLNetForPretraining`` and its ``XLNetLMHeadModel`` name."""
    out: list[Rule] = [
        ("encoder/word_embedding/embedding", "transformer.word_embedding.weight", "same"),
        ("encoder/mask_emb", "transformer.mask_emb", "flat"),
        ("lm_head/bias", "lm_loss.bias", "same"),
    ]
    for n in range(c.num_layers):
        ours, a, f = f"encoder/layers_{n}", f"transformer.layer.{n}.rel_attn", \
            f"transformer.layer.{n}.ff"
        out += [(f"{ours}/attention/{o}", f"{a}.{t}", "same") for o, t in (
            ("query", "q"), ("key", "k"), ("value", "v"), ("position", "r"),
            ("content_bias", "r_w_bias"), ("position_bias", "r_r_bias"),
            ("segment_bias", "r_s_bias"), ("segment_embed", "seg_embed"))]
        out += [(f"{ours}/attention/out", f"{a}.o", "heads_last"),
                *norm(f"{ours}/attention/norm", f"{a}.layer_norm"),
                *dense(f"{ours}/mlp/wi", f"{f}.layer_1"), *dense(f"{ours}/mlp/wo", f"{f}.layer_2"),
                *norm(f"{ours}/mlp_norm", f"{f}.layer_norm")]
    return out


def params_from_hf(state_dict: Mapping, c: TransformerConfig) -> dict:
    """Our parameter tree from an ``XLNetLMHeadModel`` (or ``XLNetModel``) state dict; without
    ``lm_loss.bias`` (an ``XLNetModel``) the output bias starts at zero."""
    sd = {k if k.startswith(("transformer.", "lm_loss.")) else f"transformer.{k}": v
          for k, v in state_dict.items()}
    sd.setdefault("lm_loss.bias", np.zeros((c.vocab_size,), np.float32))
    return maps.to_ours(rules(c), sd, c)


def load(state_dict: Mapping, c: TransformerConfig, source: str = "the state dict"
         ) -> maps.Loaded:
    """The parts of our XLNet that an ``XLNetModel`` (no ``transformer.`` prefix, no LM head
    bias) or ``XLNetLMHeadModel`` state dict holds (``maps.load_parts``)."""
    return maps.load_parts(rules(c), state_dict, c, PARTS, prefix="transformer.", source=source)


def params_to_hf(params: Mapping, c: TransformerConfig) -> dict:
    """An ``XLNetLMHeadModel`` state dict (the tied ``lm_loss.weight`` left to transformers)."""
    return maps.to_theirs(rules(c), params, c)
