"""BERT ↔ transformers' ``BertForPreTraining`` (encoder, pooler, MLM head, NSP head).

The MLM decoder weight is the word embedding (tied) and its bias is ``cls.predictions.bias``; both
are ours too (``mlm_head/bias``, the token table), so nothing is dropped either way. ``load``
reads the other layouts too (``BertModel``, ``BertForMaskedLM``, ``BertFor…Classification``):
the parts they hold, and which they lack.
"""

from __future__ import annotations

from collections.abc import Mapping

from lm.config import TransformerConfig
from lm.interop import maps
from lm.interop.maps import Rule

MODEL_TYPE = "bert"
ARCH = "bert"
HF_ARCHITECTURE = "BertForPreTraining"
NAME = "BERT"
# The layouts checkpoints are shared in (any other BertFor… loads the same way: its encoder).
ARCHITECTURES = ("BertModel", "BertForPreTraining", "BertForMaskedLM",
                 "BertForSequenceClassification")
PARTS = [("encoder", "encoder/"), ("pooler", "encoder/pooler/"), ("MLM head", "mlm_head/"),
         ("NSP head", "nsp_head/")]


def config_from_hf(hf: Mapping, source: str = "config.json") -> TransformerConfig:
    """Our architecture config from a ``BertConfig`` dict (``config.json``, named ``source`` in
    errors).

    Raises:
      ValueError: naming a missing or malformed setting, or one our BERT does not implement.
    """
    s = maps.Settings(hf, source, "BERT")
    s.require({"position_embedding_type": "absolute", "is_decoder": False,
               "add_cross_attention": False})
    hidden_size, num_heads = s.heads("hidden_size", "num_attention_heads")
    return TransformerConfig(
        vocab_size=s.count("vocab_size"), hidden_size=hidden_size,
        num_layers=s.count("num_hidden_layers"), num_heads=num_heads,
        mlp_dim=s.count("intermediate_size"), max_length=s.count("max_position_embeddings"),
        type_vocab_size=s.count("type_vocab_size"),
        dropout_rate=s.rate("hidden_dropout_prob", 0.1),
        attention_dropout_rate=s.rate("attention_probs_dropout_prob", 0.1),
        activation=s.activation("hidden_act", "gelu"),
        layer_norm_eps=s.scale("layer_norm_eps", 1e-12),
        initializer_range=s.scale("initializer_range", 0.02),
        pad_id=s.token_id("pad_token_id", 0))


def config_to_hf(c: TransformerConfig) -> dict:
    """A ``BertConfig`` dict for ``c`` (post-LN, D = E, K = D / H only)."""
    if c.norm_position != "post" or c.token_embed_dim != c.hidden_size or (
            c.kv_dim * c.num_heads != c.hidden_size):
        raise ValueError("BertForPreTraining needs norm_position='post', embed_dim = hidden_size "
                         f"and head_dim = hidden_size / num_heads; this model has {c}")
    return {"architectures": [HF_ARCHITECTURE], "model_type": MODEL_TYPE,
            "vocab_size": c.vocab_size, "hidden_size": c.hidden_size,
            "num_hidden_layers": c.num_layers, "num_attention_heads": c.num_heads,
            "intermediate_size": c.mlp_dim, "max_position_embeddings": c.max_length,
            "type_vocab_size": c.type_vocab_size, "hidden_dropout_prob": c.dropout_rate,
            "attention_probs_dropout_prob": c.attention_dropout_rate,
            "hidden_act": maps.ACTIVATION_TO_HF[c.activation], "layer_norm_eps": c.layer_norm_eps,
            "initializer_range": c.initializer_range, "pad_token_id": c.pad_id,
            "position_embedding_type": "absolute", "tie_word_embeddings": True,
            "dtype": "float32"}


def norm(ours: str, theirs: str) -> list[Rule]:
    """A LayerNorm: our scale/bias, their weight/bias."""
    return [(f"{ours}/scale", f"{theirs}.weight", "same"),
            (f"{ours}/bias", f"{theirs}.bias", "same")]


def dense(ours: str, theirs: str, kind: str = "linear", bias: str = "same") -> list[Rule]:
    """A projection: our kernel/bias, their weight/bias, reshaped by ``kind`` / ``bias``."""
    return [(f"{ours}/kernel", f"{theirs}.weight", kind), (f"{ours}/bias", f"{theirs}.bias", bias)]


def block(ours: str, theirs: str) -> list[Rule]:
    """One post-LN Transformer layer, BERT's names (``bert.encoder.layer.{n}``)."""
    attn = f"{theirs}.attention"
    return [
        *dense(f"{ours}/attention/query", f"{attn}.self.query", "linear_in_heads", "bias_heads"),
        *dense(f"{ours}/attention/key", f"{attn}.self.key", "linear_in_heads", "bias_heads"),
        *dense(f"{ours}/attention/value", f"{attn}.self.value", "linear_in_heads", "bias_heads"),
        *dense(f"{ours}/attention/out", f"{attn}.output.dense", "linear_out_heads"),
        *norm(f"{ours}/attention_norm", f"{attn}.output.LayerNorm"),
        *dense(f"{ours}/mlp/wi", f"{theirs}.intermediate.dense"),
        *dense(f"{ours}/mlp/wo", f"{theirs}.output.dense"),
        *norm(f"{ours}/mlp_norm", f"{theirs}.output.LayerNorm"),
    ]


def rules(c: TransformerConfig) -> list[Rule]:
    """Every parameter of ``BertForPretraining`` and its ``BertForPreTraining`` name."""
    e, b = "encoder/embeddings", "bert.embeddings"
    return [
        (f"{e}/token_embed/embedding", f"{b}.word_embeddings.weight", "same"),
        (f"{e}/position_embed/embedding", f"{b}.position_embeddings.weight", "same"),
        (f"{e}/type_embed/embedding", f"{b}.token_type_embeddings.weight", "same"),
        *norm(f"{e}/embed_norm", f"{b}.LayerNorm"),
        *[r for n in range(c.num_layers)
          for r in block(f"encoder/layers_{n}", f"bert.encoder.layer.{n}")],
        *dense("encoder/pooler", "bert.pooler.dense"),
        *dense("mlm_head/transform", "cls.predictions.transform.dense"),
        *norm("mlm_head/transform_norm", "cls.predictions.transform.LayerNorm"),
        ("mlm_head/bias", "cls.predictions.bias", "same"),
        *dense("nsp_head/classifier", "cls.seq_relationship"),
    ]


def params_from_hf(state_dict: Mapping, c: TransformerConfig) -> dict:
    """Our parameter tree from a ``BertForPreTraining`` state dict."""
    return maps.to_ours(rules(c), state_dict, c)


def load(state_dict: Mapping, c: TransformerConfig, source: str = "the state dict"
         ) -> maps.Loaded:
    """The parts of our BERT that a ``BertModel`` (no ``bert.`` prefix) or ``BertFor…`` state
    dict holds, and those it lacks (``maps.load_parts``)."""
    return maps.load_parts(rules(c), state_dict, c, PARTS, prefix="bert.", source=source)


def params_to_hf(params: Mapping, c: TransformerConfig) -> dict:
    """A ``BertForPreTraining`` state dict (tied decoder weights left to transformers)."""
    return maps.to_theirs(rules(c), params, c)
