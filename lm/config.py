"""Architecture configuration: one frozen dataclass, derived values as properties, named presets."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """Shapes and switches of a Transformer body. Letters follow docs/DESIGN.md §3.

    Attributes:
      vocab_size: V, rows of the token embedding (the tokenizer's vocabulary).
      hidden_size: D, model width.
      num_layers: N.
      num_heads: H.
      mlp_dim: F, width of the feed-forward layer.
      max_length: rows of the learned position table (longest sequence the model accepts).
      type_vocab_size: rows of the token-type (sentence A/B) table.
      head_dim: K; ``None`` means ``hidden_size // num_heads``.
      embed_dim: E, token-embedding width (ALBERT factorisation); ``None`` means E = D.
      dropout_rate: dropout on embeddings and residual branches.
      attention_dropout_rate: dropout on attention probabilities.
      activation: ``"gelu"`` (exact, erf), ``"gelu_tanh"`` (the original BERT code's) or ``"relu"``.
      norm_position: ``"post"`` (BERT: LayerNorm after each residual add) or ``"pre"``.
      layer_norm_eps: LayerNorm epsilon (BERT: 1e-12).
      initializer_range: std of the truncated-normal initialiser (BERT: 0.02).
      dtype: compute dtype, ``"float32"`` or ``"bfloat16"``; parameters are always float32.
      scan_layers: run the layers with ``nn.scan`` (one compiled layer; params stacked on
        ``layers``).
      remat: ``"none"`` or ``"full"``: recompute each layer's activations in the backward pass.
      pad_id: the token id that marks padding (attention never looks at it).
      sep_id: the token id that ends each segment ([SEP]); the order-recovery head finds the
        segments by it.
    """

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    mlp_dim: int
    max_length: int = 512
    type_vocab_size: int = 2
    head_dim: int | None = None
    embed_dim: int | None = None
    dropout_rate: float = 0.1
    attention_dropout_rate: float = 0.1
    activation: str = "gelu"
    norm_position: str = "post"
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    dtype: str = "float32"
    scan_layers: bool = False
    remat: str = "none"
    pad_id: int = 0
    sep_id: int = 3

    def __post_init__(self):
        problems = []
        if self.head_dim is None and self.hidden_size % self.num_heads:
            problems.append(f"hidden_size {self.hidden_size} is not divisible by num_heads "
                            f"{self.num_heads}; set head_dim or change num_heads")
        if self.activation not in ("gelu", "gelu_tanh", "relu"):
            problems.append(f"activation {self.activation!r} is not gelu, gelu_tanh or relu")
        if self.norm_position not in ("post", "pre"):
            problems.append(f"norm_position {self.norm_position!r} is not 'post' or 'pre'")
        if self.dtype not in ("float32", "bfloat16"):
            problems.append(f"dtype {self.dtype!r} is not 'float32' or 'bfloat16'")
        if self.remat not in ("none", "full"):
            problems.append(f"remat {self.remat!r} is not 'none' or 'full'")
        if problems:
            raise ValueError("invalid TransformerConfig: " + "; ".join(problems))

    @property
    def kv_dim(self) -> int:
        """K, the width of one attention head."""
        return self.head_dim if self.head_dim is not None else self.hidden_size // self.num_heads

    @property
    def token_embed_dim(self) -> int:
        """E, the token-embedding width (= D unless factorised)."""
        return self.embed_dim if self.embed_dim is not None else self.hidden_size

    def replace(self, **changes) -> TransformerConfig:
        return dataclasses.replace(self, **changes)


# Shapes from the papers; vocab_size is the shipped tokenizer's and is replaced by the run's.
PRESETS: dict[str, dict] = {
    "tiny": dict(hidden_size=128, num_layers=2, num_heads=2, mlp_dim=512, max_length=128),
    "bert_base": dict(hidden_size=768, num_layers=12, num_heads=12, mlp_dim=3072, max_length=512),
    "bert_large": dict(hidden_size=1024, num_layers=24, num_heads=16, mlp_dim=4096,
                       max_length=512),
    # GPT-2 (Radford et al. 2019): pre-LN, LayerNorm eps 1e-5, tanh GELU (set by the run config).
    "gpt_tiny": dict(hidden_size=128, num_layers=2, num_heads=4, mlp_dim=512, max_length=128,
                     layer_norm_eps=1e-5),
    "gpt2_small": dict(hidden_size=768, num_layers=12, num_heads=12, mlp_dim=3072,
                       max_length=1024, layer_norm_eps=1e-5),
    "gpt2_medium": dict(hidden_size=1024, num_layers=24, num_heads=16, mlp_dim=4096,
                        max_length=1024, layer_norm_eps=1e-5),
    # ALBERT: E = embed_dim, one layer shared N times (the architecture "albert" shares it).
    "albert_tiny": dict(hidden_size=128, num_layers=4, num_heads=2, mlp_dim=512, max_length=128,
                        embed_dim=64),
    "albert_base": dict(hidden_size=768, num_layers=12, num_heads=12, mlp_dim=3072,
                        max_length=512, embed_dim=128),
    "xlnet_base": dict(hidden_size=768, num_layers=12, num_heads=12, mlp_dim=3072, max_length=512),
}


def preset(name: str, *, vocab_size: int, **overrides) -> TransformerConfig:
    """A named preset with the given vocabulary and any field overridden."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
    return TransformerConfig(vocab_size=vocab_size, **{**PRESETS[name], **overrides})
