"""T5 v1.1 ↔ transformers' ``T5ForConditionalGeneration`` (and ``T5Model``, without the head).

Only the v1.1 layout converts: gated feed-forward (``feed_forward_proj="gated-gelu"``) and an
untied ``lm_head`` whose input is not rescaled (``tie_word_embeddings=false`` in transformers 4's
configs, ``scale_decoder_outputs=false`` in 5's, which ties ``lm_head`` to ``shared`` unless a
checkpoint holds both, different). The original T5 (``"relu"``, not gated; the output layer
tied to the token table and its input scaled by 1/√D) is refused in one line. transformers ties
``encoder.embed_tokens`` and ``decoder.embed_tokens`` to ``shared``: a checkpoint's copies of them
are dropped on import and left to transformers on export. The relative-position bias lives in
block 0 of each stack there, in the stack itself here.
"""

from __future__ import annotations

from collections.abc import Mapping

from lm.config import TransformerConfig
from lm.interop import maps
from lm.interop.maps import Rule

MODEL_TYPE = "t5"
ARCH = "t5"
HF_ARCHITECTURE = "T5ForConditionalGeneration"
NAME = "T5 v1.1"
ARCHITECTURES = ("T5ForConditionalGeneration", "T5Model")
PARTS = [("encoder-decoder", ""), ("lm_head", "lm_head/")]
_TIED = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")
# Our gate activation ↔ transformers' feed_forward_proj ("gated-gelu" means gelu_new there).
_GATED = {"gelu_tanh": "gated-gelu", "relu": "gated-relu", "gelu": "gated-gelu_python"}


def _activation(s: maps.Settings) -> str:
    proj = s.hf.get("feed_forward_proj", "relu")
    if proj in ("gated-gelu", "gated-gelu_new", "gated-gelu_pytorch_tanh"):
        return "gelu_tanh"
    if proj == "gated-gelu_python":
        return "gelu"
    if isinstance(proj, str) and proj.startswith("gated-"):
        return maps.activation_from_hf(proj[len("gated-"):], "feed_forward_proj", s.source)
    raise ValueError(f"{s.source}: feed_forward_proj={proj!r} is the original T5's (not gated); "
                     "pretrax implements T5 v1.1 (feed_forward_proj='gated-gelu')")


def config_from_hf(hf: Mapping, source: str = "config.json") -> TransformerConfig:
    """Our architecture config from a ``T5Config`` dict (``source`` named in errors).

    Raises:
      ValueError: naming a missing or malformed setting, or the original T5's tied head or
        non-gated feed-forward layer.
    """
    s = maps.Settings(hf, source, NAME)
    activation = _activation(s)
    # transformers 4 writes v1.1 as tie_word_embeddings=false; 5 as scale_decoder_outputs=false.
    scaled = hf.get("scale_decoder_outputs")
    if scaled is None:
        scaled = hf.get("tie_word_embeddings", True) is not False
    if scaled is not False:
        raise ValueError(f"{source}: scales the decoder output by 1/sqrt(d_model) "
                         "(tie_word_embeddings is not false: the original T5's output layer); "
                         "pretrax implements T5 v1.1's, unscaled")
    s.require({"is_encoder_decoder": True})
    num_layers, rate = s.count("num_layers"), s.rate("dropout_rate", 0.1)
    return TransformerConfig(
        vocab_size=s.count("vocab_size"), hidden_size=s.count("d_model"), num_layers=num_layers,
        num_heads=s.count("num_heads"), mlp_dim=s.count("d_ff"), head_dim=s.count("d_kv"),
        max_length=s.count("n_positions", 512), type_vocab_size=1, dropout_rate=rate,
        attention_dropout_rate=rate, activation=activation, norm_position="pre",
        layer_norm_eps=s.scale("layer_norm_epsilon", 1e-6),
        pad_id=s.token_id("pad_token_id", 0),
        num_decoder_layers=s.count("num_decoder_layers", num_layers),
        relative_buckets=s.count("relative_attention_num_buckets", 32),
        relative_max_distance=s.count("relative_attention_max_distance", 128))


def config_to_hf(c: TransformerConfig) -> dict:
    """A ``T5Config`` dict for ``c`` (decoder start id = the pad id, as T5)."""
    return {"architectures": [HF_ARCHITECTURE], "model_type": MODEL_TYPE,
            "vocab_size": c.vocab_size, "d_model": c.hidden_size, "d_kv": c.kv_dim,
            "d_ff": c.mlp_dim, "num_layers": c.num_layers, "num_decoder_layers": c.decoder_layers,
            "num_heads": c.num_heads, "relative_attention_num_buckets": c.relative_buckets,
            "relative_attention_max_distance": c.relative_max_distance,
            "dropout_rate": c.dropout_rate, "layer_norm_epsilon": c.layer_norm_eps,
            "initializer_factor": 1.0, "feed_forward_proj": _GATED[c.activation],
            "tie_word_embeddings": False, "is_encoder_decoder": True, "n_positions": c.max_length,
            "pad_token_id": c.pad_id, "decoder_start_token_id": c.pad_id, "dtype": "float32"}


def _attention(ours: str, theirs: str) -> list[Rule]:
    out: list[Rule] = [(f"{ours}/{name}/kernel", f"{theirs}.{short}.weight", "linear_in_heads")
                       for name, short in (("query", "q"), ("key", "k"), ("value", "v"))]
    return out + [(f"{ours}/out/kernel", f"{theirs}.o.weight", "linear_out_heads")]


def _stack(side: str, layers: int) -> list[Rule]:
    decoder = side == "decoder"
    out: list[Rule] = [
        (f"{side}/relative_bias/embedding",
         f"{side}.block.0.layer.0.SelfAttention.relative_attention_bias.weight", "same"),
        (f"{side}/final_norm/scale", f"{side}.final_layer_norm.weight", "same")]
    for n in range(layers):
        ours, theirs = f"{side}/layers_{n}", f"{side}.block.{n}.layer"
        out += _attention(f"{ours}/attention", f"{theirs}.0.SelfAttention")
        out.append((f"{ours}/attention_norm/scale", f"{theirs}.0.layer_norm.weight", "same"))
        if decoder:
            out += _attention(f"{ours}/cross_attention", f"{theirs}.1.EncDecAttention")
            out.append((f"{ours}/cross_attention_norm/scale", f"{theirs}.1.layer_norm.weight",
                        "same"))
        mlp = f"{theirs}.{2 if decoder else 1}"
        out += [(f"{ours}/mlp/{name}/kernel", f"{mlp}.DenseReluDense.{name}.weight", "linear")
                for name in ("wi_0", "wi_1", "wo")]
        out.append((f"{ours}/mlp_norm/scale", f"{mlp}.layer_norm.weight", "same"))
    return out


def rules(c: TransformerConfig) -> list[Rule]:
    """Every parameter of ``T5ForPretraining`` and its ``T5ForConditionalGeneration`` name."""
    return [("shared/embedding", "shared.weight", "same"),
            *_stack("encoder", c.num_layers), *_stack("decoder", c.decoder_layers),
            ("lm_head/embedding", "lm_head.weight", "same")]


def _untied(state_dict: Mapping) -> dict:
    """Without the copies of ``shared``; a checkpoint without ``lm_head.weight`` (transformers 5
    ties it to ``shared`` unless both are saved, and ``T5Model`` has none) gets ``shared``'s."""
    out = {k: v for k, v in state_dict.items() if k not in _TIED}
    if "lm_head.weight" not in out and "shared.weight" in out:
        out["lm_head.weight"] = out["shared.weight"]
    return out


def params_from_hf(state_dict: Mapping, c: TransformerConfig) -> dict:
    """Our parameter tree from a ``T5ForConditionalGeneration`` state dict."""
    return maps.to_ours(rules(c), _untied(state_dict), c)


def load(state_dict: Mapping, c: TransformerConfig, source: str = "the state dict"
         ) -> maps.Loaded:
    """Our T5's parameters from a ``T5ForConditionalGeneration`` or ``T5Model`` state dict
    (``maps.load_parts``; without ``lm_head.weight``, tied to ``shared`` as transformers 5
    does)."""
    return maps.load_parts(rules(c), _untied(state_dict), c, PARTS, source=source)


def params_to_hf(params: Mapping, c: TransformerConfig) -> dict:
    """A ``T5ForConditionalGeneration`` state dict (the tied ``embed_tokens`` left to
    transformers)."""
    return maps.to_theirs(rules(c), params, c)
