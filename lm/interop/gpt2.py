"""GPT ↔ transformers' ``GPT2LMHeadModel``.

GPT-2 stores its projections as ``Conv1D`` weights, already [in, out], and fuses query, key and
value into one ``c_attn`` of width 3D: ``split_fused`` / ``join_fused`` turn that into three
projections and back. The LM head is the token table (tied) in both models.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from lm.config import TransformerConfig
from lm.interop import maps
from lm.interop.bert import dense, norm
from lm.interop.maps import Rule

MODEL_TYPE = "gpt2"
ARCH = "gpt"
HF_ARCHITECTURE = "GPT2LMHeadModel"
NAME = "GPT-2"
ARCHITECTURES = ("GPT2Model", "GPT2LMHeadModel")
PARTS = [("decoder", "encoder/")]  # the LM head is the token table
_QKV = ("query", "key", "value")


def config_from_hf(hf: Mapping, source: str = "config.json") -> TransformerConfig:
    """Our architecture config from a ``GPT2Config`` dict (``source`` named in errors).

    GPT-2 has no padding token: ``pad_id`` becomes -1 (no id is padding), so every token is
    attended, as in transformers without an attention mask.

    Raises:
      ValueError: naming a missing or malformed setting, or one our decoder does not implement.
    """
    s = maps.Settings(hf, source, "GPT-2")
    s.require({"scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
               "reorder_and_upcast_attn": False, "add_cross_attention": False})
    d, num_heads = s.heads("n_embd", "n_head")
    return TransformerConfig(
        vocab_size=s.count("vocab_size"), hidden_size=d, num_layers=s.count("n_layer"),
        num_heads=num_heads, mlp_dim=s.count("n_inner", None) or 4 * d,
        max_length=s.count("n_positions"), type_vocab_size=1,
        dropout_rate=s.rate("resid_pdrop", 0.1), attention_dropout_rate=s.rate("attn_pdrop", 0.1),
        activation=s.activation("activation_function", "gelu_new"),
        norm_position="pre", layer_norm_eps=s.scale("layer_norm_epsilon", 1e-5),
        initializer_range=s.scale("initializer_range", 0.02),
        pad_id=s.token_id("pad_token_id", -1))


def config_to_hf(c: TransformerConfig) -> dict:
    """A ``GPT2Config`` dict for ``c``."""
    if c.kv_dim * c.num_heads != c.hidden_size:
        raise ValueError(f"GPT2LMHeadModel needs head_dim = hidden_size / num_heads; got {c}")
    return {"architectures": [HF_ARCHITECTURE], "model_type": MODEL_TYPE,
            "vocab_size": c.vocab_size, "n_embd": c.hidden_size, "n_layer": c.num_layers,
            "n_head": c.num_heads, "n_inner": c.mlp_dim, "n_positions": c.max_length,
            "resid_pdrop": c.dropout_rate, "embd_pdrop": c.dropout_rate,
            "attn_pdrop": c.attention_dropout_rate,
            "activation_function": maps.ACTIVATION_TO_HF[c.activation],
            "layer_norm_epsilon": c.layer_norm_eps, "initializer_range": c.initializer_range,
            "pad_token_id": None if c.pad_id < 0 else c.pad_id, "tie_word_embeddings": True,
            "dtype": "float32"}


def rules(c: TransformerConfig) -> list[Rule]:
    """Every parameter of ``GptForPretraining`` and its ``GPT2LMHeadModel`` name (with
    ``c_attn`` split into ``c_attn.query`` / ``.key`` / ``.value``)."""
    out: list[Rule] = [
        ("encoder/embeddings/token_embed/embedding", "transformer.wte.weight", "same"),
        ("encoder/embeddings/position_embed/embedding", "transformer.wpe.weight", "same"),
        *norm("encoder/final_norm", "transformer.ln_f"),
    ]
    for n in range(c.num_layers):
        ours, theirs = f"encoder/layers_{n}", f"transformer.h.{n}"
        out += norm(f"{ours}/attention_norm", f"{theirs}.ln_1")
        for name in _QKV:
            out += dense(f"{ours}/attention/{name}", f"{theirs}.attn.c_attn.{name}",
                         "conv_in_heads", "bias_heads")
        out += dense(f"{ours}/attention/out", f"{theirs}.attn.c_proj", "conv_out_heads")
        out += norm(f"{ours}/mlp_norm", f"{theirs}.ln_2")
        out += dense(f"{ours}/mlp/wi", f"{theirs}.mlp.c_fc", "conv")
        out += dense(f"{ours}/mlp/wo", f"{theirs}.mlp.c_proj", "conv")
    return out


def split_fused(state_dict: Mapping) -> dict:
    """``…attn.c_attn.weight`` [D, 3D] / ``.bias`` [3D] → ``…c_attn.{query,key,value}.*``."""
    out = {}
    for k, v in state_dict.items():
        if ".attn.c_attn." in k:
            stem, leaf = k.rsplit(".", 1)
            for name, part in zip(_QKV, np.split(maps.as_float32(v), 3, axis=-1), strict=True):
                out[f"{stem}.{name}.{leaf}"] = part
        else:
            out[k] = v
    return out


def join_fused(state_dict: Mapping) -> dict:
    """The inverse of ``split_fused``."""
    out = {}
    for k, v in state_dict.items():
        stem, name, leaf = k.rsplit(".", 2) if ".attn.c_attn." in k else (k, None, None)
        if name is None:
            out[k] = v
        elif name == "query":
            out[f"{stem}.{leaf}"] = np.concatenate(
                [state_dict[f"{stem}.{n}.{leaf}"] for n in _QKV], axis=-1)
    return out


def params_from_hf(state_dict: Mapping, c: TransformerConfig) -> dict:
    """Our parameter tree from a ``GPT2LMHeadModel`` (or ``GPT2Model``) state dict."""
    sd = {k if k.startswith(("transformer.", "lm_head.")) else f"transformer.{k}": v
          for k, v in state_dict.items()}
    return maps.to_ours(rules(c), split_fused(sd), c)


def _fused_name(name: str) -> str:
    """The checkpoint's name of a ``split_fused`` tensor (``…c_attn.query.weight`` →
    ``…c_attn.weight``)."""
    return re.sub(r"\.c_attn\.(query|key|value)\.", ".c_attn.", name)


def load(state_dict: Mapping, c: TransformerConfig, source: str = "the state dict"
         ) -> maps.Loaded:
    """Our GPT's parameters from a ``GPT2Model`` (no ``transformer.`` prefix) or
    ``GPT2LMHeadModel`` state dict (``maps.load_parts``)."""
    return maps.load_parts(rules(c), split_fused(state_dict), c, PARTS, prefix="transformer.",
                           origin=_fused_name, source=source)


def params_to_hf(params: Mapping, c: TransformerConfig) -> dict:
    """A ``GPT2LMHeadModel`` state dict (the tied ``lm_head.weight`` left to transformers)."""
    return join_fused(maps.to_theirs(rules(c), params, c))
