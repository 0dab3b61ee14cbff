"""Shared building blocks: lookup tables, dense layers, LayerNorm, the feed-forward block.

Every parameter is float32 and carries logical axis names from ``lm/axes.py``; computation runs in
the config's dtype. Shape letters follow docs/DESIGN.md §3.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from lm import axes
from lm.config import TransformerConfig

PARAM_DTYPE = jnp.float32


def gelu(x: jax.Array) -> jax.Array:
    """The exact GELU, ``x · Φ(x) = x · (1 + erf(x / √2)) / 2``, written with erf as BERT and
    PyTorch write it. ``nn.gelu(approximate=False)`` computes the same through erfc, whose XLA
    expansion (two branches, one with an exp) takes twice as long on CPU."""
    return 0.5 * x * (1.0 + jax.lax.erf(x * jnp.asarray(math.sqrt(0.5), x.dtype)))


_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "gelu": gelu,
    "gelu_tanh": lambda x: nn.gelu(x, approximate=True),
    "relu": nn.relu,
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """The elementwise activation called ``name`` (``gelu`` is the exact erf form).

    Raises:
      KeyError: for an unknown name.
    """
    if name not in _ACTIVATIONS:
        raise KeyError(f"unknown activation {name!r}; known: {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]


def compute_dtype(config: TransformerConfig) -> jnp.dtype:
    """The dtype activations are computed in (parameters stay float32)."""
    return jnp.dtype(config.dtype)


def kernel_init(config: TransformerConfig, names: Sequence[str]):
    """Truncated-normal(std = ``initializer_range``) initialiser tagged with logical ``names``."""
    return nn.with_logical_partitioning(
        nn.initializers.truncated_normal(stddev=config.initializer_range), tuple(names))


def zeros_init(names: Sequence[str]):
    """Zeros initialiser tagged with logical ``names`` (biases)."""
    return nn.with_logical_partitioning(nn.initializers.zeros_init(), tuple(names))


def ones_init(names: Sequence[str]):
    """Ones initialiser tagged with logical ``names`` (LayerNorm scales)."""
    return nn.with_logical_partitioning(nn.initializers.ones_init(), tuple(names))


def embed_axis(config: TransformerConfig) -> str:
    """Logical name of the token-embedding width: ``factor`` when E ≠ D (ALBERT), else ``embed``."""
    return axes.FACTOR if config.token_embed_dim != config.hidden_size else axes.EMBED


class Dense(nn.Module):
    """``y = x · kernelᵀ + bias``, contracting the trailing ``contract`` dims of ``x``.

    The kernel is stored ``[*features, *inputs]`` (e.g. [H, K, D] for a query projection, [F, D]
    for an MLP's first layer), outputs first like ``torch.nn.Linear``'s [out, in]: XLA's CPU dots
    then take the weight gradient ``dyᵀ · x`` in the layout it is kept in, with no transposed
    copy (an MLP's forward + backward measured 15% faster than with [in, out] kernels). Unlike
    ``nn.DenseGeneral`` the kernel is created at its true shape, so its logical names stay valid
    when the initialiser runs under a mesh.

    Attributes:
      features: output feature shape, e.g. ``(D,)`` or ``(H, K)``.
      kernel_axes: logical names of the contracted input dims, then of the output dims (the
        kernel stores them outputs first); the bias takes the output dims' names.
      config: supplies the initialiser range and compute dtype.
      contract: how many trailing dims of ``x`` to contract.
      use_bias: add a bias (BERT, GPT); T5 has none.
    """

    features: tuple[int, ...]
    kernel_axes: tuple[str, ...]
    config: TransformerConfig
    contract: int = 1
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """[..., *in] → [..., *features] in the compute dtype."""
        dtype = compute_dtype(self.config)
        c, n_out = self.contract, len(self.features)
        in_shape = x.shape[x.ndim - c:]
        names = (*self.kernel_axes[c:], *self.kernel_axes[:c])
        kernel = self.param("kernel", kernel_init(self.config, names),
                            (*self.features, *in_shape), PARAM_DTYPE)
        bias = (self.param("bias", zeros_init(self.kernel_axes[c:]), self.features, PARAM_DTYPE)
                if self.use_bias else None)
        y = jnp.tensordot(x.astype(dtype), kernel.astype(dtype),
                          axes=(tuple(range(x.ndim - c, x.ndim)), tuple(range(n_out, n_out + c))))
        return y if bias is None else y + bias.astype(dtype)


def dense(config: TransformerConfig, features: int | Sequence[int], kernel_axes: Sequence[str], *,
          name: str | None = None, contract: int = 1, use_bias: bool = True) -> Dense:
    """A ``Dense`` with int-or-tuple ``features``; ``name`` is None inside ``setup``."""
    features = (features,) if isinstance(features, int) else tuple(features)
    return Dense(features, tuple(kernel_axes), config, contract, use_bias, name=name)


def layer_norm(config: TransformerConfig, *, name: str | None = None, axis_name: str = axes.EMBED
               ) -> nn.LayerNorm:
    """LayerNorm over the last dim; statistics in float32, output in the compute dtype."""
    return nn.LayerNorm(
        epsilon=config.layer_norm_eps, dtype=compute_dtype(config), param_dtype=PARAM_DTYPE,
        scale_init=ones_init((axis_name,)), bias_init=zeros_init((axis_name,)), name=name)


class RmsNorm(nn.Module):
    """T5's layer norm: ``x / √(mean(x²) + eps) · scale``: no mean subtracted, no bias.
    Statistics in float32, output in the compute dtype (``config.layer_norm_eps``: T5 1e-6).

    Attributes:
      config: supplies epsilon and the compute dtype.
      axis_name: logical name of the normalised (last) dim.
    """

    config: TransformerConfig
    axis_name: str = axes.EMBED

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """[..., D] → [..., D]."""
        scale = self.param("scale", ones_init((self.axis_name,)), (x.shape[-1],), PARAM_DTYPE)
        x32 = x.astype(jnp.float32)
        mean_square = jnp.mean(jnp.square(x32), axis=-1, keepdims=True)
        y = x32 * jax.lax.rsqrt(mean_square + self.config.layer_norm_eps)
        return (y * scale).astype(compute_dtype(self.config))


class Embed(nn.Module):
    """A learned lookup table [rows, width] (tokens, positions or types).

    Attributes:
      num_embeddings: rows (V for tokens).
      features: width (E for tokens).
      names: logical axis names of the table, e.g. ``(vocab, embed)``.
      config: supplies the initialiser range and compute dtype.
    """

    num_embeddings: int
    features: int
    names: tuple[str, str]
    config: TransformerConfig

    def setup(self):
        self.embedding = self.param(
            "embedding", kernel_init(self.config, self.names),
            (self.num_embeddings, self.features), PARAM_DTYPE)

    def __call__(self, ids_BL: jax.Array) -> jax.Array:
        """Rows of the table: int ids [B, L] → [B, L, E] in the compute dtype."""
        return jnp.take(self.embedding, ids_BL, axis=0).astype(compute_dtype(self.config))

    def attend(self, x_BPE: jax.Array) -> jax.Array:
        """Scores against every row, ``x @ embedding.T``: [..., E] → float32 [..., V].

        The tied MLM output layer; accumulates in float32 so bfloat16 logits keep their precision.
        """
        dtype = compute_dtype(self.config)
        return jnp.einsum("...E,VE->...V", x_BPE.astype(dtype), self.embedding.astype(dtype),
                          preferred_element_type=jnp.float32)


def _mix32(x: jax.Array) -> jax.Array:
    """A bijective 32-bit integer hash with full avalanche (Wellons' "lowbias32")."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def element_index(shape: Sequence[int], dims: range | None = None) -> jax.Array:
    """uint32 [shape]: each element's row-major position within the dims ``dims`` of ``shape``
    (default all; the other dims broadcast), as fused iotas. Wraps modulo 2³² past 2³²."""
    index = jnp.zeros(shape, jnp.uint32)
    stride = 1
    for dim in reversed(range(len(shape)) if dims is None else dims):
        index = index + jax.lax.broadcasted_iota(jnp.uint32, shape, dim) * jnp.uint32(stride)
        stride *= shape[dim]
    return index


# Elements one hash of a 32-bit position covers; beyond it keep_mask splits the position in two.
INDEX_LIMIT = 2 ** 32


def _split_dim(shape: Sequence[int], limit: int) -> int:
    """The first dim of the longest suffix of ``shape`` whose size fits ``limit``.

    Raises:
      ValueError: when the leading dims before it do not fit ``limit`` either.
    """
    split = next(k for k in range(len(shape) + 1) if math.prod(shape[k:]) <= limit)
    if split == len(shape) or math.prod(shape[:split]) > limit:
        raise ValueError(f"dropout on shape {tuple(shape)}: neither its last dim nor its "
                         f"leading dims fit 2^32 positions; reshape it")
    return split


def keep_mask(rng: jax.Array, rate: float, shape: Sequence[int], *,
              _limit: int = INDEX_LIMIT) -> tuple[jax.Array, float]:
    """Dropout's keep mask and the scale of what it keeps.

    The key gives two 32-bit words (one small PRNG draw); each element's uniform is a hash of its
    position and those words, ``mix(mix(index ^ w0) + w1)`` with a bijective avalanche mixer.
    XLA fuses that into the ``where`` that applies the mask, so a mask costs a few integer
    operations per element and no pass of its own, where ``jax.random.bernoulli`` runs threefry
    (20 rounds) for every element and writes the bits out (its cost was 8% of a BERT step on
    CPU). The mask depends on the global position only, so it is the same however the array is
    sharded. The keep probability is ``round((1 - rate) · 2³²) / 2³²`` and the scale its exact
    inverse, so the kept values stay unbiased.

    Positions are 32-bit, so an array of more than 2³² elements (GPT-2 small's attention
    probabilities, 512 × 12 × 1,024² ≈ 6.4e9) is split at the longest suffix of dims that fits:
    ``index`` is the position within that suffix and each leading-dims position gets its own
    second word, ``mix(lead ^ w1)`` (distinct for distinct leads, the mixer being bijective), so
    every slice is a mask of the same form under its own word. Still fused iotas, still a few
    integer operations per element; arrays of up to 2³² elements keep exactly the mask above.

    Args:
      rng: the dropout key.
      rate: probability of dropping an element.
      shape: the mask's shape.
      _limit: positions one hash covers (2³²); tests lower it to reach the split path cheaply.

    Returns:
      (bool mask of ``shape``, float scale).

    Raises:
      ValueError: for a shape whose last dim alone, or whose leading dims, exceed 2³².
    """
    threshold = min(int(round((1.0 - rate) * 2 ** 32)), 2 ** 32 - 1)
    words = jax.random.bits(rng, (2,), jnp.uint32)
    if math.prod(shape) <= _limit:
        index, w1 = element_index(shape), words[1]
    else:
        split = _split_dim(shape, _limit)
        index = element_index(shape, range(split, len(shape)))
        w1 = _mix32(element_index(shape, range(split)) ^ words[1])
    uniform = _mix32(_mix32(index ^ words[0]) + w1)
    return uniform < jnp.uint32(threshold), 2 ** 32 / threshold


def dropout(x: jax.Array, rate: float, rng: jax.Array) -> jax.Array:
    """Zeroes each element with probability ``rate`` and scales the rest (see ``keep_mask``)."""
    keep, scale = keep_mask(rng, rate, x.shape)
    return jnp.where(keep, x * jnp.asarray(scale, x.dtype), jnp.zeros((), x.dtype))


class Dropout(nn.Module):
    """``nn.Dropout`` with ``keep_mask``'s cheaper randomness (same rng stream name, ``dropout``).

    Attributes:
      rate: probability of zeroing an element.
    """

    rate: float

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
        if deterministic or self.rate == 0.0:
            return x
        return dropout(x, self.rate, self.make_rng("dropout"))


class Mlp(nn.Module):
    """The feed-forward block: Dense D→F, activation, Dense F→D."""

    config: TransformerConfig

    @nn.compact
    def __call__(self, x_BLD: jax.Array) -> jax.Array:
        """[B, L, D] → [B, L, D]."""
        cfg = self.config
        h_BLF = dense(cfg, cfg.mlp_dim, (axes.EMBED, axes.MLP), name="wi")(x_BLD)
        h_BLF = activation(cfg.activation)(h_BLF)
        h_BLF = nn.with_logical_constraint(h_BLF, (axes.BATCH, axes.LENGTH, axes.ACT_MLP))
        return dense(cfg, cfg.hidden_size, (axes.MLP, axes.EMBED), name="wo")(h_BLF)


class GatedMlp(nn.Module):
    """T5 v1.1's feed-forward block (GEGLU, Shazeer 2020): ``wo(drop(act(wi_0 x) ⊙ wi_1 x))``,
    no biases; ``config.activation`` is the gate's (T5 v1.1: ``gelu_tanh``)."""

    config: TransformerConfig

    @nn.compact
    def __call__(self, x_BLD: jax.Array, deterministic: bool) -> jax.Array:
        """[B, L, D] → [B, L, D]; dropout (``dropout_rate``) on the gated hidden layer."""
        cfg = self.config
        gate_BLF = dense(cfg, cfg.mlp_dim, (axes.EMBED, axes.MLP), name="wi_0",
                         use_bias=False)(x_BLD)
        linear_BLF = dense(cfg, cfg.mlp_dim, (axes.EMBED, axes.MLP), name="wi_1",
                           use_bias=False)(x_BLD)
        h_BLF = activation(cfg.activation)(gate_BLF) * linear_BLF
        h_BLF = nn.with_logical_constraint(h_BLF, (axes.BATCH, axes.LENGTH, axes.ACT_MLP))
        h_BLF = Dropout(cfg.dropout_rate)(h_BLF, deterministic=deterministic)
        return dense(cfg, cfg.hidden_size, (axes.MLP, axes.EMBED), name="wo",
                     use_bias=False)(h_BLF)


def positions_of(token_ids_BL: jax.Array, positions_BL: jax.Array | None) -> jax.Array:
    """``positions_BL`` if given (packed batches restart them per example), else 0..L-1 in every
    row: int32 [B, L]."""
    if positions_BL is not None:
        return positions_BL
    b, length = token_ids_BL.shape
    return jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32), (b, length))


class Embeddings(nn.Module):
    """Token + learned position + type embeddings → LayerNorm → dropout (→ E→D projection).

    When E ≠ D (ALBERT) all three tables have width E and a Dense ``(factor, embed)`` maps the
    normalised sum to D.
    """

    config: TransformerConfig

    def setup(self):
        cfg = self.config
        e, e_axis = cfg.token_embed_dim, embed_axis(cfg)
        self.token_embed = Embed(cfg.vocab_size, e, (axes.VOCAB, e_axis), cfg)
        self.position_embed = Embed(cfg.max_length, e, (axes.POS, e_axis), cfg)
        self.type_embed = Embed(cfg.type_vocab_size, e, (axes.TYPES, e_axis), cfg)
        self.embed_norm = layer_norm(cfg, axis_name=e_axis)
        self.embed_dropout = Dropout(cfg.dropout_rate)
        if e != cfg.hidden_size:
            self.embed_project = dense(cfg, cfg.hidden_size, (axes.FACTOR, axes.EMBED))

    def __call__(self, token_ids_BL: jax.Array, type_ids_BL: jax.Array, positions_BL: jax.Array,
                 *, deterministic: bool) -> jax.Array:
        """Int ids, types and positions, each [B, L] → [B, L, D] in the compute dtype."""
        x_BLE = (self.token_embed(token_ids_BL) + self.position_embed(positions_BL) +
                 self.type_embed(type_ids_BL))
        x_BLE = self.embed_norm(x_BLE)
        x_BLE = self.embed_dropout(x_BLE, deterministic=deterministic)
        if self.config.token_embed_dim != self.config.hidden_size:
            return self.embed_project(x_BLE)
        return x_BLE

    def attend(self, x_BPE: jax.Array) -> jax.Array:
        """Scores against the token table (tied output layer): [..., E] → float32 [..., V]."""
        return self.token_embed.attend(x_BPE)
