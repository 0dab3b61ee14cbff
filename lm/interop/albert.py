"""ALBERT ↔ transformers' ``AlbertForPreTraining`` (factorised embedding, one shared layer, MLM
head, SOP head).

Only one layer group with one layer (``num_hidden_groups = inner_group_num = 1``, every released
ALBERT) maps onto our single ``shared_layer``.
"""

from __future__ import annotations

from collections.abc import Mapping

from lm.config import TransformerConfig
from lm.interop import maps
from lm.interop.bert import dense, norm
from lm.interop.maps import Rule

MODEL_TYPE = "albert"
ARCH = "albert"
HF_ARCHITECTURE = "AlbertForPreTraining"
NAME = "ALBERT"
ARCHITECTURES = ("AlbertModel", "AlbertForPreTraining", "AlbertForMaskedLM",
                 "AlbertForSequenceClassification")
PARTS = [("encoder", "encoder/"), ("pooler", "encoder/pooler/"), ("MLM head", "mlm_head/"),
         ("SOP head", "sop_head/")]


def config_from_hf(hf: Mapping, source: str = "config.json") -> TransformerConfig:
    """Our architecture config from an ``AlbertConfig`` dict (``source`` named in errors).

    Raises:
      ValueError: naming a missing or malformed setting, or one our ALBERT does not implement.
    """
    s = maps.Settings(hf, source, "ALBERT")
    s.require({"num_hidden_groups": 1, "inner_group_num": 1,
               "position_embedding_type": "absolute"})
    hidden_size, num_heads = s.heads("hidden_size", "num_attention_heads")
    return TransformerConfig(
        vocab_size=s.count("vocab_size"), hidden_size=hidden_size,
        num_layers=s.count("num_hidden_layers"), num_heads=num_heads,
        mlp_dim=s.count("intermediate_size"), max_length=s.count("max_position_embeddings"),
        type_vocab_size=s.count("type_vocab_size"), embed_dim=s.count("embedding_size"),
        dropout_rate=s.rate("hidden_dropout_prob", 0.0),
        attention_dropout_rate=s.rate("attention_probs_dropout_prob", 0.0),
        activation=s.activation("hidden_act", "gelu_new"),
        layer_norm_eps=s.scale("layer_norm_eps", 1e-12),
        initializer_range=s.scale("initializer_range", 0.02),
        pad_id=s.token_id("pad_token_id", 0))


def config_to_hf(c: TransformerConfig) -> dict:
    """An ``AlbertConfig`` dict for ``c``."""
    if c.norm_position != "post" or c.kv_dim * c.num_heads != c.hidden_size:
        raise ValueError("AlbertForPreTraining needs norm_position='post' and head_dim = "
                         f"hidden_size / num_heads; this model has {c}")
    return {"architectures": [HF_ARCHITECTURE], "model_type": MODEL_TYPE,
            "vocab_size": c.vocab_size, "embedding_size": c.token_embed_dim,
            "hidden_size": c.hidden_size, "num_hidden_layers": c.num_layers,
            "num_hidden_groups": 1, "inner_group_num": 1, "num_attention_heads": c.num_heads,
            "intermediate_size": c.mlp_dim, "max_position_embeddings": c.max_length,
            "type_vocab_size": c.type_vocab_size, "hidden_dropout_prob": c.dropout_rate,
            "attention_probs_dropout_prob": c.attention_dropout_rate,
            "hidden_act": maps.ACTIVATION_TO_HF[c.activation], "layer_norm_eps": c.layer_norm_eps,
            "initializer_range": c.initializer_range, "pad_token_id": c.pad_id,
            "position_embedding_type": "absolute", "tie_word_embeddings": True,
            "dtype": "float32"}


def rules(c: TransformerConfig) -> list[Rule]:
    """Every parameter of ``AlbertForPretraining`` (MLM + SOP) and its transformers name."""
    e, b = "encoder/embeddings", "albert.embeddings"
    ours, theirs = "encoder/shared_layer", "albert.encoder.albert_layer_groups.0.albert_layers.0"
    return [
        (f"{e}/token_embed/embedding", f"{b}.word_embeddings.weight", "same"),
        (f"{e}/position_embed/embedding", f"{b}.position_embeddings.weight", "same"),
        (f"{e}/type_embed/embedding", f"{b}.token_type_embeddings.weight", "same"),
        *norm(f"{e}/embed_norm", f"{b}.LayerNorm"),
        *dense(f"{e}/embed_project", "albert.encoder.embedding_hidden_mapping_in"),
        *dense(f"{ours}/attention/query", f"{theirs}.attention.query", "linear_in_heads",
               "bias_heads"),
        *dense(f"{ours}/attention/key", f"{theirs}.attention.key", "linear_in_heads",
               "bias_heads"),
        *dense(f"{ours}/attention/value", f"{theirs}.attention.value", "linear_in_heads",
               "bias_heads"),
        *dense(f"{ours}/attention/out", f"{theirs}.attention.dense", "linear_out_heads"),
        *norm(f"{ours}/attention_norm", f"{theirs}.attention.LayerNorm"),
        *dense(f"{ours}/mlp/wi", f"{theirs}.ffn"),
        *dense(f"{ours}/mlp/wo", f"{theirs}.ffn_output"),
        *norm(f"{ours}/mlp_norm", f"{theirs}.full_layer_layer_norm"),
        *dense("encoder/pooler", "albert.pooler"),
        *dense("mlm_head/transform", "predictions.dense"),
        *norm("mlm_head/transform_norm", "predictions.LayerNorm"),
        ("mlm_head/bias", "predictions.bias", "same"),
        *dense("sop_head/classifier", "sop_classifier.classifier"),
    ]


def params_from_hf(state_dict: Mapping, c: TransformerConfig) -> dict:
    """Our parameter tree from an ``AlbertForPreTraining`` state dict."""
    return maps.to_ours(rules(c), state_dict, c)


def load(state_dict: Mapping, c: TransformerConfig, source: str = "the state dict"
         ) -> maps.Loaded:
    """The parts of our ALBERT that an ``AlbertModel`` (no ``albert.`` prefix) or
    ``AlbertFor…`` state dict holds, and those it lacks (``maps.load_parts``)."""
    return maps.load_parts(rules(c), state_dict, c, PARTS, prefix="albert.", source=source)


def params_to_hf(params: Mapping, c: TransformerConfig) -> dict:
    """An ``AlbertForPreTraining`` state dict (tied decoder weights left to transformers)."""
    return maps.to_theirs(rules(c), params, c)
