"""Architecture configuration: one frozen dataclass, derived values as properties.

The named shapes (BERT-base, GPT-2 small, ...) are run-config variants (launch/configs/), which
state every field; nothing here fills in a shape by name.
"""

from __future__ import annotations

import dataclasses

# The fields only encoder–decoder models (T5) read; other families' configs leave them unstated.
SEQ2SEQ_FIELDS = ("num_decoder_layers", "relative_buckets", "relative_max_distance")

# How attention is computed (lm/attention.py); the fused ones have no attention-probability dropout.
ATTENTION_IMPLS = ("xla", "dot_product", "cudnn", "flash", "auto")
FUSED_ATTENTION = ("dot_product", "cudnn", "flash")


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
      attention_impl: how attention is computed (``lm/attention.py``): ``"xla"`` (einsum, the
        only one with attention-probability dropout), ``"dot_product"``
        (``jax.nn.dot_product_attention``), ``"cudnn"`` (its cuDNN kernel: GPU, bfloat16),
        ``"flash"`` (Pallas splash attention: TPU; interpreted on CPU), or ``"auto"``: flash on
        TPU, cuDNN on GPU in bfloat16, else xla, and xla whenever ``attention_dropout_rate > 0``.
        XLNet's relative attention ignores it. Parameters are the same for all.
      pad_id: the token id that marks padding (attention never looks at it).
      sep_id: the token id that ends each segment ([SEP]); the order-recovery head finds the
        segments by it.
      num_decoder_layers: encoder–decoder models (T5): the decoder's layers; ``None`` means
        ``num_layers`` (the encoder's).
      relative_buckets: T5's relative-position buckets (half per direction in the encoder).
      relative_max_distance: T5's distance beyond which relative positions share one bucket.
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
    attention_impl: str = "xla"
    pad_id: int = 0
    sep_id: int = 3
    num_decoder_layers: int | None = None
    relative_buckets: int = 32
    relative_max_distance: int = 128

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
        if self.relative_buckets < 4 or self.relative_buckets % 2:
            problems.append(f"relative_buckets {self.relative_buckets} is not an even number "
                            ">= 4 (T5: 32)")
        problems += self._attention_problems()
        if problems:
            raise ValueError("invalid TransformerConfig: " + "; ".join(problems))

    def _attention_problems(self) -> list[str]:
        impl = self.attention_impl
        if impl not in ATTENTION_IMPLS:
            return [f"attention_impl {impl!r} is not one of {', '.join(ATTENTION_IMPLS)}"]
        problems = []
        if impl in FUSED_ATTENTION and self.attention_dropout_rate > 0.0:
            problems.append(f"attention_impl {impl!r} has no attention-probability dropout but "
                            f"attention_dropout_rate={self.attention_dropout_rate}; set "
                            "attention_dropout_rate=0, or attention_impl='auto' (xla when "
                            "there is dropout) or 'xla'")
        if impl == "cudnn" and self.dtype != "bfloat16":
            problems.append(f"attention_impl 'cudnn' computes in bfloat16, not {self.dtype}; set "
                            "dtype='bfloat16' or attention_impl='dot_product'")
        return problems

    @property
    def kv_dim(self) -> int:
        """K, the width of one attention head."""
        return self.head_dim if self.head_dim is not None else self.hidden_size // self.num_heads

    @property
    def token_embed_dim(self) -> int:
        """E, the token-embedding width (= D unless factorised)."""
        return self.embed_dim if self.embed_dim is not None else self.hidden_size

    @property
    def decoder_layers(self) -> int:
        """The decoder's layer count in an encoder–decoder model."""
        return self.num_layers if self.num_decoder_layers is None else self.num_decoder_layers

    def replace(self, **changes) -> TransformerConfig:
        return dataclasses.replace(self, **changes)

